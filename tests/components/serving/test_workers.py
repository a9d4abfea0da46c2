"""Worker processes sharing one socket: new keep-alive connections are spread evenly, a busy or
dead worker delays no client, and the board of open connections per worker."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from components.serving.workers import SLOTS, ConnectionBoard

ROOT = Path(__file__).resolve().parents[3]
APP = f"{__name__}:pid_app"


async def pid_app(scope, receive, send) -> None:
    """Answers with the pid of the worker process; ``/block`` holds that worker's event loop for 2 s."""
    if scope["type"] != "http":
        return
    if scope["path"] == "/block":
        time.sleep(2.0)  # a worker busy in its event loop (a slow request that does not yield)
    body = str(os.getpid()).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


# --- the board ------------------------------------------------------------------------------------

def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_board_gives_each_worker_a_slot_and_finds_the_least_loaded_other(tmp_path):
    board = ConnectionBoard.create(tmp_path / "connections")
    peer = ConnectionBoard(tmp_path / "connections")
    try:
        assert board.fewest_elsewhere() is None  # alone: nobody to yield to
        assert board.claim() == 0
        assert peer.claim(pid=os.getppid()) == 1
        board.publish(3)
        peer.publish(1)
        assert board.fewest_elsewhere() == (os.getppid(), 1)
        assert peer.fewest_elsewhere() == (os.getpid(), 3)
        assert board.counts() == {os.getpid(): 3, os.getppid(): 1}
        peer.release()
        assert board.fewest_elsewhere() is None
    finally:
        board.close()
        peer.close()


def test_board_reuses_the_slot_of_a_worker_that_died_and_is_full_at_its_size(tmp_path):
    board = ConnectionBoard.create(tmp_path / "connections")
    try:
        gone = dead_pid()
        board.claim(pid=gone)  # a worker killed without freeing its slot
        board.publish(5)
        replacement = ConnectionBoard(tmp_path / "connections")
        assert replacement.claim() == 0  # the dead worker's slot
        assert replacement.counts() == {os.getpid(): 0}
        for _ in range(SLOTS - 1):
            assert ConnectionBoard(tmp_path / "connections").claim() >= 0
        assert ConnectionBoard(tmp_path / "connections").claim() == -1
        replacement.close()
    finally:
        board.close()


# --- two real worker processes ----------------------------------------------------------------------

class Workers:
    """``serve_balanced`` with 2 uvicorn processes of ``pid_app`` in a subprocess (it owns the signals)."""

    def __init__(self, folder: Path, pin_cores: bool = False) -> None:
        from components.config import load_params
        from components.serving.app import free_port

        self.folder, self.port = folder, free_port()
        self.wait_ms = load_params(ROOT / "params.yaml").common.serving.accept_wait_ms
        code = ("import sys; from pathlib import Path; from components.serving.app import server_config; "
                "from components.serving.workers import serve_balanced; "
                f"serve_balanced(server_config({APP!r}, '127.0.0.1', {self.port}, workers=2), "
                f"Path(sys.argv[1]), {self.wait_ms}, {pin_cores})")
        self.process = subprocess.Popen([sys.executable, "-c", code, str(folder)], cwd=ROOT,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def board(self) -> dict[int, int]:
        board = ConnectionBoard(self.folder / "connections")
        try:
            return board.counts()
        finally:
            board.close()

    def wait_until(self, check, what: str, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while not check():
            assert self.process.poll() is None, self.process.stdout.read()
            assert time.monotonic() < deadline, f"{what}; board {self.board()}"
            time.sleep(0.02)

    def idle(self) -> None:
        """Until both workers are up and hold no connection."""
        self.wait_until(lambda: (c := self.board()) and len(c) == 2 and not any(c.values()), "the workers are not idle")

    def stop(self) -> str:
        self.process.send_signal(signal.SIGTERM)
        return self.process.communicate(timeout=60)[0]


@pytest.fixture(scope="module")
def workers(tmp_path_factory):
    folder = tmp_path_factory.mktemp("workers")
    served = Workers(folder)
    board = folder / "connections"
    try:
        served.wait_until(lambda: board.is_file() and board.stat().st_size == SLOTS * 16 and len(served.board()) == 2,
                          "two workers did not come up")
        yield served
    finally:
        output = served.stop()
        assert served.process.returncode == 0, output


def connect(port: int, count: int) -> list[socket.socket]:
    """``count`` connections opened back to back (a client pool starting up)."""
    return [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(count)]


def ask(conn: socket.socket, path: str = "/") -> None:
    conn.sendall(f"GET {path} HTTP/1.1\r\nHost: funnel\r\n\r\n".encode())


def answer_pid(conn: socket.socket) -> int:
    data = b""
    while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < int(
            data.split(b"content-length: ")[1].split(b"\r\n")[0]):
        chunk = conn.recv(4096)
        assert chunk, "the server closed the connection"
        data += chunk
    return int(data.split(b"\r\n\r\n", 1)[1])


def pids_of(conns: list[socket.socket]) -> list[int]:
    for conn in conns:
        ask(conn)
    return [answer_pid(conn) for conn in conns]


def close_all(conns: list[socket.socket]) -> None:
    for conn in conns:
        conn.close()


@pytest.mark.parametrize("connections", [4, 6])
def test_a_burst_of_keep_alive_connections_is_split_evenly_every_time(workers, connections):
    splits = []
    for _ in range(15):
        workers.idle()
        conns = connect(workers.port, connections)
        try:
            splits.append(sorted(Counter(pids_of(conns)).values()))
        finally:
            close_all(conns)
    assert splits == [[connections // 2] * 2] * 15


def test_a_busy_worker_does_not_stop_a_new_connection_being_served(workers):
    # given 3 connections (2 + 1) and the worker holding one of them busy for 2 s
    workers.idle()
    conns = connect(workers.port, 3)
    try:
        pids = pids_of(conns)
        counts = Counter(pids)
        assert sorted(counts.values()) == [1, 2]
        lone = next(pid for pid, n in counts.items() if n == 1)
        busy = conns[pids.index(lone)]
        ask(busy, "/block")
        time.sleep(0.3)
        # when a new client connects: the busy worker has fewer connections, so it would be its turn
        late = connect(workers.port, 1)
        conns += late
        # then the other worker serves it while the busy one is still blocked
        assert pids_of(late) == [next(pid for pid in counts if pid != lone)]
        busy.setblocking(False)
        with pytest.raises(BlockingIOError):
            busy.recv(1)  # the blocked worker has not answered yet
        busy.setblocking(True)
        assert answer_pid(busy) == lone
    finally:
        close_all(conns)


def test_a_killed_worker_blocks_no_client_and_its_replacement_takes_its_share(workers):
    # given 3 connections (2 + 1)
    workers.idle()
    conns = connect(workers.port, 3)
    pids = pids_of(conns)
    counts = Counter(pids)
    assert sorted(counts.values()) == [1, 2]
    lone = next(pid for pid, n in counts.items() if n == 1)
    other = next(pid for pid in counts if pid != lone)
    # when the worker with 1 is killed: its slot still says it is there with 1 connection
    os.kill(lone, signal.SIGKILL)
    # then new clients are served by the other, and after uvicorn's supervisor starts a
    # replacement, a burst is split evenly again
    late = connect(workers.port, 2)
    assert pids_of(late) == [other, other]
    close_all(conns + late)
    workers.wait_until(lambda: len(c := workers.board()) == 2 and lone not in c and not any(c.values()),
                       "no replacement worker came up")
    conns = connect(workers.port, 4)
    try:
        assert sorted(Counter(pids_of(conns)).values()) == [2, 2]
    finally:
        close_all(conns)


def thread_cores(pid: int) -> set[frozenset[int]]:
    """The cores each thread of process ``pid`` may run on."""
    return {frozenset(os.sched_getaffinity(int(task.name))) for task in Path(f"/proc/{pid}/task").iterdir()}


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="no CPU affinity on this OS")
def test_pinned_workers_run_every_thread_on_a_core_of_their_own(tmp_path):
    """common.serving.pin_workers: each worker's threads on one core, round robin over the cores the
    server may use (two cores here: one each); without it they may use every core."""
    allowed = sorted(os.sched_getaffinity(0))
    served = Workers(tmp_path, pin_cores=True)
    try:
        board = tmp_path / "connections"
        served.wait_until(lambda: board.is_file() and board.stat().st_size == SLOTS * 16 and len(served.board()) == 2,
                          "two pinned workers did not come up")
        served.idle()
        conns = connect(served.port, 4)  # the threads a worker starts once it serves are pinned too
        pids_of(conns)
        close_all(conns)
        cores = [thread_cores(pid) for pid in served.board()]
    finally:
        output = served.stop()
    assert served.process.returncode == 0, output
    assert all(len(each) == 1 and len(next(iter(each))) == 1 for each in cores)  # one core per process
    expected = {frozenset({allowed[0]}), frozenset({allowed[1 % len(allowed)]})}
    assert {next(iter(each)) for each in cores} == expected


def test_unpinned_workers_may_use_every_core(workers):
    workers.idle()
    assert all(thread_cores(pid) == {frozenset(os.sched_getaffinity(0))} for pid in workers.board())
