"""Online serving: `mlflow models serve` vs `funnel serve` on the same intent champion, same load.

The same load drives each server in turn for the same time: wrk (Debian's package; one thread,
keep-alive connections, one-row JSON requests drawn from the real intent data) when it is
installed, otherwise a pure-Python generator with the same shape (``--load``). The table shows
req/s, p50, p99 and errors, then batch scoring rows/s of funnel's compiled path vs
``mlflow.pyfunc`` predict. The intent champion comes from the repository's registry; without one,
a throw-away copy of the repository trains it through the real flow first.

Usage: .venv/bin/python benchmarks/serving_benchmark.py [--duration 10] [--connections 4] [--load wrk|python|auto]
       [--only sessions] [--session-connections 1,4]

``--only sessions`` runs the sessions table alone: the same `funnel serve sessions` under one
20-click prefix per request at each of ``--session-connections``, item ids in click order, then
(when the champion takes the optional ``times``) the same clicks shuffled with their unix seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from flows.runtime import configure_environment

configure_environment()

ROOT = Path(__file__).resolve().parents[1]
INTENT_CSV = ROOT / "data" / "intent" / "online_shoppers_intention.csv"
# measured on this machine: 2-layer Keras MLP, 1 thread, 4 connections, one-row JSON
MLFLOW_REFERENCE = {"req/s": 23.9, "p50 ms": 163.0, "p99 ms": 271.0}
TARGET_SPEEDUP, TARGET_P99_MS = 40.0, 15.0
# sessions: the clicks of a visit so far (issue 18: p99 <= 10 ms for a 20-click prefix; printed, not asserted)
SESSIONS_MIRROR = Path(os.environ.get("FUNNEL_DATA_MIRROR") or ROOT.parent / "shared" / "data") / "yoochoose_clicks_100k"
SESSION_PREFIX_CLICKS, SESSION_TARGET_P99_MS = 20, 10.0


@dataclass(frozen=True)
class LoadResult:
    name: str
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]

    @property
    def rate(self) -> float:
        return (self.requests - self.errors) / self.seconds

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --- the champion -------------------------------------------------------------------------------

def find_or_train_champion() -> tuple[Path, str]:
    """(repo root, version) of an intent @champion: the repository's, or one trained in a copy."""
    from components.config import load_params, load_settings
    from components.release.registry import get_alias_version

    settings = load_settings(repo_root=ROOT)
    alias = load_params(settings.params_path).common.champion_alias
    found = get_alias_version(settings, "intent", alias)
    if found is not None:
        return ROOT, str(found.version)
    project = Path(tempfile.mkdtemp(prefix="funnel-serving-benchmark-")) / "repo"
    print(f"no intent @{alias} in {settings.tracking_uri}: training one in {project}")
    copy_project(project)
    os.environ["FUNNEL_REPO_ROOT"] = str(project)
    os.environ["FUNNEL_DVC_REMOTE"] = str(project.parent / "remote")
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    from flows.retrain import retrain

    return project, str(retrain("intent")["champion_version"])


def copy_project(folder: Path) -> None:
    """The code, params and intent data in a fresh git + DVC repository."""
    folder.mkdir(parents=True)
    for name in ("params.yaml", "dvc.yaml", ".gitignore"):
        shutil.copy(ROOT / name, folder / name)
    shutil.copytree(ROOT / "components", folder / "components", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "data" / "intent", folder / "data" / "intent")
    run = {"cwd": folder, "check": True, "capture_output": True}
    subprocess.run(["git", "init", "-q"], **run)
    subprocess.run(["git", "-c", "user.email=b@b", "-c", "user.name=b", "add", "-A"], **run)
    subprocess.run(["git", "-c", "user.email=b@b", "-c", "user.name=b", "commit", "-qm", "init"], **run)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], **run)


def intent_rows(fields, count: int | None = None):
    """Real intent rows cast to the signature's types (a JSON number for float32, etc.)."""
    import pandas as pd

    frame = pd.read_csv(INTENT_CSV)
    casts = {"float32": "float64", "int64": "int64", "int32": "int64", "string": "str"}
    frame = frame[[f.name for f in fields]].astype({f.name: casts[f.dtype] for f in fields})
    return frame if count is None else frame.sample(n=count, random_state=7)


# --- servers ----------------------------------------------------------------------------------

def start_server(command: list[str], env: dict[str, str], ready_url: str, log: Path) -> subprocess.Popen:
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{command[:4]} exited with {process.returncode}; see {log}")
        try:
            with urllib.request.urlopen(ready_url, timeout=2) as answer:
                if answer.status == 200:
                    return process
        except OSError:
            time.sleep(0.5)
    stop_server(process)
    raise RuntimeError(f"{ready_url} did not answer within 240 s; see {log}")


def wait_for_workers(port: int, workers: int, timeout_s: float = 120) -> None:
    """/ready answers as soon as one worker is up: wait until /metrics shows every worker serving."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            serving = [line for line in answer.read().decode().splitlines()
                       if line.startswith("funnel_serving_model_version{")]
        if len(serving) >= workers:
            return
        time.sleep(0.5)
    raise RuntimeError(f"only {len(serving)} of {workers} funnel serve workers came up in {timeout_s:g} s")


def stop_server(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- load generator -----------------------------------------------------------------------------

def http_request(port: int, path: str, body: bytes) -> bytes:
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


async def read_response(reader: asyncio.StreamReader) -> int:
    """The status of one HTTP/1.1 response (body read and dropped; keep-alive)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
    if "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding") == "chunked":
        while (size := int((await reader.readuntil(b"\r\n")).strip(), 16)) > 0:
            await reader.readexactly(size + 2)
        await reader.readuntil(b"\r\n")
    return status


async def drive(port: int, requests: list[bytes], connections: int, seconds: float, latencies: list[float]) -> tuple[int, int]:
    deadline = time.perf_counter() + seconds
    counts = [0, 0]

    async def connection(offset: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        index = offset
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                writer.write(requests[index % len(requests)])
                status = await asyncio.wait_for(read_response(reader), timeout=10)
            except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError):
                counts[1] += 1
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                continue
            latencies.append((time.perf_counter() - started) * 1000)
            counts[0] += 1
            counts[1] += status >= 400
            index += connections
        writer.close()

    await asyncio.gather(*(connection(i) for i in range(connections)))
    return counts[0], counts[1]


WRK_SCRIPT = """
bodies = {%s}
counter = 0
request = function()
  counter = counter + 1
  return wrk.format("POST", "%s", {["Content-Type"] = "application/json"}, bodies[(counter %% #bodies) + 1])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("FUNNEL_RESULT %%d %%d %%d %%.1f %%.1f\\n", summary.requests,
    e.connect + e.read + e.write + e.timeout + e.status, summary.duration,
    latency:percentile(50), latency:percentile(99)))
end
"""


def run_wrk(name: str, url: str, path: str, bodies: list[bytes], connections: int, seconds: float,
            warmup_s: float, workdir: Path) -> LoadResult:
    """The same load from wrk (Debian's package): 1 thread, ``connections`` keep-alive connections."""
    script = workdir / f"{name.split()[0]}.lua"
    script.write_text(WRK_SCRIPT % (",".join(f"[==[{b.decode()}]==]" for b in bodies), path))
    command = ["wrk", "-t1", f"-c{connections}", "-s", str(script), url + path]
    subprocess.run([*command[:-1], f"-d{max(1, round(warmup_s))}s", command[-1]], check=True, capture_output=True)
    out = subprocess.run([*command[:-1], f"-d{round(seconds)}s", command[-1]], check=True,
                         capture_output=True, text=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("FUNNEL_RESULT"))
    requests, errors, micros, p50, p99 = line.split()[1:]
    # wrk keeps percentiles, not samples: the result carries them as a two-point distribution
    return WrkResult(name, int(requests), int(errors), int(micros) / 1e6, [], float(p50) / 1000, float(p99) / 1000)


@dataclass(frozen=True)
class WrkResult(LoadResult):
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")

    def percentile(self, q: float) -> float:
        return {0.5: self.p50_ms, 0.99: self.p99_ms}[q]


def run_load(name: str, port: int, requests: list[bytes], connections: int, seconds: float, warmup_s: float) -> LoadResult:
    asyncio.run(drive(port, requests, connections, warmup_s, []))
    latencies: list[float] = []
    started = time.perf_counter()
    done, errors = asyncio.run(drive(port, requests, connections, seconds, latencies))
    return LoadResult(name, done, errors, time.perf_counter() - started, latencies)


# --- batch scoring ----------------------------------------------------------------------------

def batch_scoring(version: str, repeats: int = 3) -> list[list[str]]:
    """rows/s of mlflow.pyfunc predict vs funnel's compiled path on the whole intent file."""
    import mlflow
    import numpy as np

    from components.config import load_settings
    from components.release.registry import connect
    from components.serving.schema import pack_frame, read_fields
    from components.serving.scorer import CompiledScorer

    connect(load_settings())
    model = mlflow.pyfunc.load_model(f"models:/intent/{version}")
    fields = read_fields(model.metadata.signature, model._model_impl.spec)
    frame = intent_rows(fields)
    scorer = CompiledScorer(model._model_impl.model, fields)

    def best(score) -> tuple[float, np.ndarray]:
        times, out = [], None
        for _ in range(repeats):
            started = time.perf_counter()
            out = score()
            times.append(time.perf_counter() - started)
        return len(frame) / min(times), np.asarray(out).reshape(-1)

    mlflow_rate, expected = best(lambda: model.predict(frame))
    funnel_rate, got = best(lambda: scorer.score_packed(pack_frame(fields, frame))["output"])
    gap = float(np.max(np.abs(expected - got)))
    return [["mlflow.pyfunc predict", f"{len(frame)}", f"{mlflow_rate:,.0f}", "1.0x", ""],
            ["funnel compiled path", f"{len(frame)}", f"{funnel_rate:,.0f}", f"{funnel_rate / mlflow_rate:.1f}x",
             f"max |diff| {gap:.1e}"]]


# --- main -------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load per server")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of load before measuring")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--load", choices=["auto", "wrk", "python"], default="auto",
                        help="load generator: wrk (apt-get install wrk; what the reference used) or the "
                             "Python one; auto = wrk when installed")
    parser.add_argument("--server-workers", type=int, default=None,
                        help="funnel serve worker processes (default: common.serving.workers in params.yaml)")
    parser.add_argument("--only", choices=["all", "sessions"], default="all",
                        help="sessions: the sessions table alone (no intent, mlflow, support or batch runs)")
    parser.add_argument("--session-connections", default="1,4",
                        help="comma-separated connection counts of the sessions table")
    args = parser.parse_args()
    use_wrk = args.load == "wrk" or (args.load == "auto" and shutil.which("wrk") is not None)
    session_connections = [int(c) for c in args.session_connections.split(",")]

    import orjson

    from components.config import load_params, load_settings
    from components.release.registry import connect
    from components.serving.schema import read_fields
    from flows.cli import render_table

    logs = Path(tempfile.mkdtemp(prefix="funnel-serving-logs-"))

    def load(name: str, port: int, path: str, payloads: list[bytes], connections: int | None = None) -> LoadResult:
        connections = connections or args.connections
        if use_wrk:
            return run_wrk(name, f"http://127.0.0.1:{port}", path, payloads, connections, args.duration,
                           args.warmup, logs)
        bodies = [http_request(port, path, body) for body in payloads]
        return run_load(name, port, bodies, connections, args.duration, args.warmup)

    if args.only == "sessions":
        settings = load_settings(repo_root=ROOT)
        connect(settings)
        workers = args.server_workers or load_params(settings.params_path).common.serving.workers
        print(f"sessions from {settings.tracking_uri}; load from {'wrk' if use_wrk else 'Python'}, one thread, "
              f"{args.duration:g} s per row after {args.warmup:g} s warm-up; server logs in {logs}")
        print_session_table(serve_session_champion(settings, {**os.environ, "FUNNEL_REPO_ROOT": str(ROOT)}, workers,
                                                   load, logs, session_connections), workers)
        print(f"\nmachine: {os.cpu_count()} cores, load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
        return

    root, version = find_or_train_champion()
    env = {**os.environ, "FUNNEL_REPO_ROOT": str(root)}

    settings = load_settings(repo_root=root)
    connect(settings)
    import mlflow

    signature = mlflow.models.get_model_info(f"models:/intent/{version}").signature
    fields = read_fields(signature, {s.name: _dtype(s.type) for s in signature.inputs.inputs})
    records = orjson.loads(intent_rows(fields, 500).to_json(orient="records"))

    print(f"intent v{version} from {settings.tracking_uri}; load from {'wrk' if use_wrk else 'Python'}, "
          f"{args.connections} connections, one thread, "
          f"{args.duration:g} s per server after {args.warmup:g} s warm-up; server logs in {logs}")

    results = []
    port = free_port()
    # mlflow runs `uvicorn` by name: the venv's bin goes first on PATH
    mlflow_env = {**env, "MLFLOW_TRACKING_URI": settings.tracking_uri,
                  "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    process = start_server([sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/intent/{version}",
                            "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)],
                           mlflow_env, f"http://127.0.0.1:{port}/ping", logs / "mlflow.log")
    try:
        results.append(load("mlflow models serve", port, "/invocations",
                            [orjson.dumps({"dataframe_records": [r]}) for r in records]))
    finally:
        stop_server(process)

    port = free_port()
    funnel = str(Path(sys.executable).parent / "funnel")
    workers = args.server_workers or load_params(settings.params_path).common.serving.workers
    process = start_server([funnel, "serve", "intent", "--host", "127.0.0.1", "--port", str(port),
                            "--workers", str(workers)], env, f"http://127.0.0.1:{port}/ready", logs / "funnel.log")
    wait_for_workers(port, workers)
    try:
        results.append(load("funnel serve", port, "/predict/intent", [orjson.dumps({"rows": [r]}) for r in records]))
    finally:
        stop_server(process)

    base = results[0].rate
    rows = [[r.name, f"{r.rate:,.1f}", f"{r.percentile(0.5):.2f}", f"{r.percentile(0.99):.2f}",
             f"{r.errors}/{r.requests}", f"{r.rate / base:.1f}x"] for r in results]
    print(f"\nOnline, one-row JSON requests (funnel serve: {workers} worker processes)")
    print(render_table(rows, ("server", "req/s", "p50 ms", "p99 ms", "errors/requests", "throughput vs mlflow")))
    funnel = results[1]
    met = funnel.rate >= TARGET_SPEEDUP * MLFLOW_REFERENCE["req/s"] and funnel.percentile(0.99) <= TARGET_P99_MS
    print(f"\ntarget: >= {TARGET_SPEEDUP:g}x the reference {MLFLOW_REFERENCE['req/s']} req/s "
          f"(= {TARGET_SPEEDUP * MLFLOW_REFERENCE['req/s']:.0f} req/s) and p99 <= {TARGET_P99_MS:g} ms: "
          f"{'met' if met else 'NOT met'} ({funnel.rate / MLFLOW_REFERENCE['req/s']:.1f}x the reference, "
          f"{funnel.rate / base:.1f}x this run's mlflow)")
    text_results = serve_text_champions(settings, env, workers, load, logs)
    if text_results:
        print("\nOnline, one support message per request (the sentence encoder inside the model)")
        print(render_table([[r.name, f"{r.rate:,.1f}", f"{r.percentile(0.5):.2f}", f"{r.percentile(0.99):.2f}",
                             f"{r.errors}/{r.requests}"] for r in text_results],
                           ("server", "req/s", "p50 ms", "p99 ms", "errors/requests")))
    print_session_table(serve_session_champion(settings, env, workers, load, logs, session_connections), workers)
    print("\nBatch scoring, the whole intent file in one call (best of 3)")
    print(render_table(batch_scoring(version), ("path", "rows", "rows/s", "vs mlflow", "check")))
    print(f"\nmachine: {os.cpu_count()} cores, load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          + ("p50/p99 from wrk's latency histogram" if use_wrk else
             f"p50/p99 median of {statistics.median([len(r.latencies_ms) for r in results]):.0f} samples"))


def serve_champion(use_case: str, bodies: list[bytes], env, workers: int, load, logs: Path,
                   runs: list[tuple[str, list[bytes], int | None]] | None = None) -> list[LoadResult]:
    """`funnel serve <use_case>` with ``workers`` workers under the load of one request per body;
    ``runs`` (name, bodies, connections): several loads in turn on the same server instead."""
    port = free_port()
    process = start_server([str(Path(sys.executable).parent / "funnel"), "serve", use_case, "--host", "127.0.0.1",
                            "--port", str(port), "--workers", str(workers)], env, f"http://127.0.0.1:{port}/ready",
                           logs / f"funnel-{use_case}.log")
    wait_for_workers(port, workers)
    try:
        if runs is None:
            return [load(f"funnel serve ({use_case})", port, f"/predict/{use_case}", bodies)]
        return [load(name, port, f"/predict/{use_case}", payloads, connections) for name, payloads, connections in runs]
    finally:
        stop_server(process)


def serve_text_champions(settings, env, workers: int, load, logs: Path) -> list[LoadResult]:
    """`funnel serve support` on the registry's support @champion, one real test message per
    request; nothing when there is none (make run trains one)."""
    import orjson
    import pandas as pd

    from components.release.registry import get_alias_version

    alias = "champion"
    if get_alias_version(settings, "support", alias) is None:
        print(f"\nno support @{alias} in {settings.tracking_uri}: the text serving table is skipped (run make run)")
        return []
    messages = pd.read_csv(ROOT / "data" / "support" / "test.csv")["text"].head(500)
    return serve_champion("support", [orjson.dumps({"rows": [{"text": m}]}) for m in messages], env, workers, load, logs)


def session_prefixes(count: int, clicks: int) -> list[tuple[str, str]]:
    """``count`` prefixes of ``clicks`` real clicks each, as (item ids in click order, the same
    clicks shuffled with their unix seconds): consecutive clicks of the test day's log in session
    order (a visit's clicks, continued by the next visit's when it is shorter)."""
    import numpy as np
    import pandas as pd

    log = pd.read_csv(SESSIONS_MIRROR / "yoochoose-clicks-100k_test.txt", sep="\t")
    ordered = log.sort_values(["SessionId", "Time"], kind="stable")
    items, seconds = ordered["ItemId"].astype(str).to_numpy(), ordered["Time"].to_numpy()
    rng = np.random.default_rng(7)
    prefixes = []
    for start in range(0, count * clicks, clicks):
        if start + clicks > len(items):
            break
        shuffled = rng.permutation(np.arange(start, start + clicks))
        prefixes.append((" ".join(items[start:start + clicks]), " ".join(items[shuffled]),
                         " ".join(f"{t:.3f}" for t in seconds[shuffled])))
    return prefixes


def serve_session_champion(settings, env, workers: int, load, logs: Path,
                           connections: list[int] | None = None) -> list[LoadResult]:
    """`funnel serve sessions` on the registry's sessions @champion, one 20-click prefix per
    request at each connection count, then (when the champion takes the optional times) the same
    clicks shuffled with their times; nothing when there is no champion (`funnel retrain
    sessions` trains one) or no data mirror."""
    import mlflow
    import orjson

    from components.release.registry import get_alias_version

    found = get_alias_version(settings, "sessions", "champion")
    if found is None or not SESSIONS_MIRROR.is_dir():
        print(f"\nno sessions @champion in {settings.tracking_uri} (or no {SESSIONS_MIRROR}): the sessions table "
              "is skipped (run `funnel retrain sessions`)")
        return []
    names = [s.name for s in mlflow.models.get_model_info(f"models:/sessions/{found.version}").signature.inputs.inputs]
    prefixes = session_prefixes(500, SESSION_PREFIX_CLICKS)
    in_order = [orjson.dumps({"rows": [{"items": ids}]}) for ids, _, _ in prefixes]
    runs: list[tuple[str, list[bytes], int | None]] = [
        (f"v{found.version}, {c} connection(s), items in order", in_order, c) for c in connections or [None]]
    if "times" in names:
        shuffled = [orjson.dumps({"rows": [{"items": ids, "times": times}]}) for _, ids, times in prefixes]
        runs += [(f"v{found.version}, {c} connection(s), shuffled + times", shuffled, c) for c in connections or [None]]
    return serve_champion("sessions", [], env, workers, load, logs, runs)


def print_session_table(results: list[LoadResult], workers: int) -> None:
    if not results:
        return
    from flows.cli import render_table

    print(f"\nOnline, one visit's last {SESSION_PREFIX_CLICKS} clicks per request (funnel serve sessions, "
          f"{workers} workers: the next 20 items)")
    print(render_table([[r.name, f"{r.rate:,.1f}", f"{r.percentile(0.5):.2f}", f"{r.percentile(0.99):.2f}",
                         f"{r.errors}/{r.requests}"] for r in results],
                       ("load", "req/s", "p50 ms", "p99 ms", "errors/requests")))
    worst = max(r.percentile(0.99) for r in results)
    print(f"target: p99 <= {SESSION_TARGET_P99_MS:g} ms for a {SESSION_PREFIX_CLICKS}-click prefix: "
          f"{'met' if worst <= SESSION_TARGET_P99_MS else 'NOT met'} (worst row {worst:.2f} ms)")


def _dtype(numpy_type) -> str:
    kind = getattr(numpy_type, "kind", "U")
    return {"f": "float32", "i": "int64"}.get(kind, "string")


if __name__ == "__main__":
    main()
