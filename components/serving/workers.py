"""Worker processes on one listening socket that share its connections out evenly.

uvicorn's supervisor hands every worker the same socket, and under uvloop the worker that wakes
first accepts every connection waiting (libuv accepts in a loop; UV_TCP_SINGLE_ACCEPT is gone from
the libuv uvloop 0.23 bundles): a burst of 4 keep-alive clients fell 4 + 0 on 2 workers in 16 of
30 tries. Here each worker accepts one connection at a time itself, and a worker that holds more
open connections than the least loaded live worker waits (at most ``wait_ms``) for that one to take
the next. Open connections per worker live in a small shared file, one slot per worker process.
With ``pin_cores``, each worker's threads run on one core, the slot-th of the cores the server may
use (round robin), so the workers do not trade cores and caches under load.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import mmap
import os
import socket
import struct
import time
from pathlib import Path

from uvicorn import Config, Server
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors.multiprocess import Multiprocess, Process

logger = logging.getLogger(__name__)

# slots in the board: more than any worker count, so that a replacement (restart, SIGHUP, SIGTTIN)
# finds a free one while the worker it replaces still holds its own
SLOTS = 64
_SLOT = struct.Struct("qq")  # pid (0: free), open connections


class ConnectionBoard:
    """Open connections per worker process, in a file every worker maps (8-byte aligned values)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._file = self.path.open("r+b")
        self._map = mmap.mmap(self._file.fileno(), SLOTS * _SLOT.size)
        self._values = memoryview(self._map).cast("q")
        self.slot: int | None = None

    @classmethod
    def create(cls, path: Path) -> ConnectionBoard:
        """A new empty board at ``path`` (in the folder of one ``funnel serve``)."""
        Path(path).write_bytes(bytes(SLOTS * _SLOT.size))
        return cls(path)

    def claim(self, pid: int | None = None) -> int:
        """Take a free slot (or one whose process is gone) for ``pid``; -1 when every slot is taken."""
        pid = pid or os.getpid()
        with self._locked():
            for slot in range(SLOTS):
                owner = self._values[2 * slot]
                if owner == 0 or not _alive(owner):
                    self._values[2 * slot], self._values[2 * slot + 1] = pid, 0
                    self.slot = slot
                    return slot
        return -1

    def publish(self, connections: int) -> None:
        if self.slot is not None:
            self._values[2 * self.slot + 1] = connections

    def fewest_elsewhere(self) -> tuple[int, int] | None:
        """(pid, open connections) of the least loaded other worker that holds a slot; None if none."""
        best = None
        values = self._values
        for slot in range(SLOTS):
            pid = values[2 * slot]
            if pid and slot != self.slot and (best is None or values[2 * slot + 1] < best[1]):
                best = (pid, values[2 * slot + 1])
        return best

    def counts(self) -> dict[int, int]:
        """pid -> open connections of every slot taken."""
        return {self._values[2 * s]: self._values[2 * s + 1] for s in range(SLOTS) if self._values[2 * s]}

    def release(self, pid: int | None = None) -> None:
        """Free this worker's slot (or the slot of a process that is gone: ``pid``)."""
        with self._locked():
            for slot in range(SLOTS):
                if (pid is None and slot == self.slot) or (pid is not None and self._values[2 * slot] == pid):
                    self._values[2 * slot], self._values[2 * slot + 1] = 0, 0
        if pid is None:
            self.slot = None

    def close(self) -> None:
        self._values.release()
        self._map.close()
        self._file.close()

    @contextlib.contextmanager
    def _locked(self):
        fcntl.flock(self._file.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class BalancedListener:
    """Accepts connections on a shared socket one at a time, yielding to a less loaded worker.

    Quacks like the ``asyncio.Server`` uvicorn keeps (``close``, ``wait_closed``), so uvicorn's
    own shutdown stops it."""

    POLL_S = 0.001  # how often a waiting worker looks at the board again

    def __init__(self, sock: socket.socket, protocol_factory, board: ConnectionBoard, count_open,
                 wait_s: float) -> None:
        self.sockets = [sock]
        self._sock, self._fd = sock, sock.fileno()
        self._factory = protocol_factory
        self._board = board
        self._count_open = count_open  # this worker's open connections (uvicorn's own set)
        self._wait_s = wait_s
        self._accepting = 0  # accepted, not yet handed to a protocol
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._sock.setblocking(False)
        self._task = asyncio.get_running_loop().create_task(self._accept_forever())

    def publish(self) -> None:
        self._board.publish(self._count_open() + self._accepting)

    async def _accept_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await _readable(loop, self._fd)
            await self._wait_for_turn()
            try:
                conn, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                continue  # another worker took it
            except OSError as exc:  # e.g. EMFILE: say so, do not spin
                logger.warning("accepting a connection failed: %s", exc)
                await asyncio.sleep(0.1)
                continue
            self._accepting += 1
            self.publish()
            try:
                conn.setblocking(False)
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                await loop.connect_accepted_socket(self._factory, conn)
            except Exception as exc:  # noqa: BLE001 - one broken connection must not stop the listener
                logger.warning("a new connection failed before its first request: %s", exc)
                conn.close()
            finally:
                self._accepting -= 1
                self.publish()

    async def _wait_for_turn(self) -> None:
        """Let a less loaded live worker take the waiting connection, for at most ``wait_s``."""
        deadline = time.monotonic() + self._wait_s
        while time.monotonic() < deadline:
            least = self._board.fewest_elsewhere()
            if least is None or self._count_open() + self._accepting <= least[1]:
                return
            if not _alive(least[0]):  # a worker killed without freeing its slot
                self._board.release(least[0])
                continue
            await asyncio.sleep(self.POLL_S)

    def close(self) -> None:
        # before uvicorn closes the socket: no reader may stay on its file descriptor
        asyncio.get_running_loop().remove_reader(self._fd)
        if self._task is not None:
            self._task.cancel()

    async def wait_closed(self) -> None:
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def _readable(loop: asyncio.AbstractEventLoop, fd: int) -> None:
    """Until the listening socket ``fd`` has a connection waiting (every worker is woken)."""
    ready = loop.create_future()
    loop.add_reader(fd, _set_once, ready)
    try:
        await ready
    finally:
        loop.remove_reader(fd)


def _set_once(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


class BalancedServer(Server):
    """uvicorn's server for one worker process that accepts through a ``BalancedListener``."""

    def __init__(self, config: Config, board_path: Path, wait_ms: float, pin_cores: bool = False) -> None:
        super().__init__(config)
        self.board_path, self.wait_s, self.pin_cores = board_path, wait_ms / 1000, pin_cores
        self.board: ConnectionBoard | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        if not sockets or len(sockets) != 1:  # not one shared socket from the supervisor: uvicorn's own way
            await super().startup(sockets)
            return
        await self.lifespan.startup()
        if self.lifespan.should_exit:
            raise SystemExit(STARTUP_FAILURE)
        config, state = self.config, self.server_state
        self.board = board = ConnectionBoard(self.board_path)
        slot = board.claim()
        if slot < 0:
            logger.warning("no free slot in %s: this worker accepts without balancing", self.board_path)
        elif self.pin_cores:
            pin_to_core(slot)
        loop = asyncio.get_running_loop()

        class Counted(config.http_protocol_class):  # type: ignore[name-defined]
            """uvicorn's protocol that tells the board when its connection ends."""

            def connection_lost(self, exc: Exception | None) -> None:
                super().connection_lost(exc)
                listener.publish()

        def create_protocol() -> asyncio.Protocol:  # as uvicorn builds its protocol
            return Counted(config=config, server_state=state, app_state=self.lifespan.state, _loop=loop)

        listener = BalancedListener(sockets[0], create_protocol, board, lambda: len(state.connections), self.wait_s)
        listener.start()
        # closed and awaited by uvicorn's shutdown like the asyncio servers it keeps there
        self.servers = [listener]  # type: ignore[list-item]
        self.started = True

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().shutdown(sockets)
        finally:
            if self.board is not None:
                self.board.release()
                self.board.close()


def pin_to_core(slot: int) -> None:
    """Run every thread of this process (and the threads it starts later) on one core: the
    ``slot``-th, round robin, of the cores it may use now (nothing where the OS has no affinity call)."""
    if not hasattr(os, "sched_setaffinity"):
        return
    allowed = sorted(os.sched_getaffinity(0))
    core = allowed[slot % len(allowed)]
    for task in Path("/proc/self/task").iterdir():  # TensorFlow's and the store's threads exist already
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            os.sched_setaffinity(int(task.name), {core})
    logger.info("worker process [%s] runs on core %d", os.getpid(), core)


class BalancedProcess(Process):
    """uvicorn's worker process running a ``BalancedServer``."""

    def __init__(self, config: Config, sockets: list[socket.socket], board_path: Path, wait_ms: float,
                 pin_cores: bool = False) -> None:
        self.board_path, self.wait_ms, self.pin_cores = board_path, wait_ms, pin_cores
        super().__init__(config, sockets)

    @property
    def server(self) -> Server:
        if self._server is None:
            self._server = BalancedServer(self.config, self.board_path, self.wait_ms, self.pin_cores)
        return self._server


class BalancedMultiprocess(Multiprocess):
    """uvicorn's supervisor (restarts a worker that dies, SIGHUP / SIGTTIN / SIGTTOU) whose worker
    processes balance their connections through the board at ``board_path``."""

    def __init__(self, config: Config, sockets: list[socket.socket], board_path: Path, wait_ms: float,
                 pin_cores: bool = False) -> None:
        super().__init__(config, sockets)
        self.board_path, self.wait_ms, self.pin_cores = board_path, wait_ms, pin_cores

    def new_process(self) -> BalancedProcess:
        return BalancedProcess(self.config, self.sockets, self.board_path, self.wait_ms, self.pin_cores)

    def init_processes(self) -> None:
        for _ in range(self.processes_num):
            process = self.new_process()
            process.start()
            self.processes.append(process)

    def keep_subprocess_alive(self) -> None:
        # as uvicorn's, with a balanced process as the replacement
        if self.should_exit.is_set():
            return
        for index, process in enumerate(self.processes):
            if process.is_alive(timeout=self.config.timeout_worker_healthcheck):
                continue
            process.kill()
            process.join()
            if process.exitcode == STARTUP_FAILURE:
                logger.error("worker process [%s] failed to start: stopping", process.pid)
                self.should_exit.set()
                return
            if self.should_exit.is_set():
                return
            logger.info("worker process [%s] died: starting another", process.pid)
            replacement = self.new_process()
            replacement.start()
            self.processes[index] = replacement

    def restart_all(self) -> None:
        # as uvicorn's (SIGHUP): each replacement is ready before the worker it replaces stops
        for index, old in enumerate(self.processes):
            if self.should_exit.is_set():
                return
            new = self.new_process()
            new.start()
            if not new.wait_until_ready(self.config.timeout_worker_healthcheck, self.should_exit):
                new.kill()
                new.join()
                return
            old.terminate()
            old.join()
            self.processes[index] = new

    def handle_ttin(self) -> None:
        self.processes_num += 1
        process = self.new_process()
        process.start()
        self.processes.append(process)


def serve_balanced(config: Config, folder: Path, wait_ms: float, pin_cores: bool = False) -> None:
    """Run ``config.workers`` uvicorn processes on one socket, connections shared out evenly, until
    SIGINT / SIGTERM; the board of open connections lives in ``folder`` (one per server). With
    ``pin_cores`` each worker runs on one core (``pin_to_core``)."""
    board_path = Path(folder) / "connections"
    ConnectionBoard.create(board_path).close()
    sock = config.bind_socket()
    sock.listen(config.backlog)  # what uvicorn's create_server would do in each worker
    try:
        BalancedMultiprocess(config, [sock], board_path, wait_ms, pin_cores).run()
    finally:
        sock.close()
