"""funnel's production stack started from packages, for machines without a Docker engine.

The same services as ``infra/docker-compose.yml``, with the same settings (read from
``infra/.env.example``; secrets replaced by random ones, ports by free ones):

- PostgreSQL from Debian's package (``/usr/lib/postgresql/<v>/bin``), one database each for
  MLflow, MLflow's auth and Prefect, created by ``infra/postgres/create-databases.sh``;
- an S3-compatible endpoint (moto's server mode) standing in for MinIO, with both buckets, an
  admin key and the workers' key for the DVC bucket only (moto enforces the policy);
- ``mlflow server`` on PostgreSQL with S3 artifacts and basic auth, via ``infra/mlflow/start.sh``;
- ``prefect server start`` on its own PostgreSQL database, with basic auth;
- a Prefect process work pool and a worker that runs funnel's flows, as its own MLflow user
  (not the admin; ``infra/mlflow/create-worker-user.py``).

Run it by hand::

    python infra/packages/stack.py up          # prints the exports that point funnel at it

``make test-stack`` starts it from the tests (``tests/stack``). Only the standard library is
needed to start it; the services come from the environment's ``mlflow``, ``prefect`` and
``moto_server`` executables.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

INFRA = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"


class StackError(RuntimeError):
    """A service of the stack did not come up; the message names it and shows its log."""


def read_env_example(path: Path = INFRA / ".env.example") -> dict[str, str]:
    """The compose settings (``KEY=value`` lines) that the stack reuses."""
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            values[key.strip()] = value.strip()
    return values


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def postgres_bin() -> Path:
    """The newest Debian PostgreSQL server binaries."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if not found:
        raise StackError("PostgreSQL server binaries not found under /usr/lib/postgresql; "
                         "install them with `apt-get install postgresql`.")
    return found[-1].parent


def executable(name: str) -> str:
    """``name`` from this interpreter's environment first, else from PATH."""
    local = Path(sys.executable).parent / name
    if local.is_file():
        return str(local)
    found = shutil.which(name)
    if not found:
        raise StackError(f"`{name}` is not installed; install funnel's stack extra: pip install -e '.[stack]'")
    return found


@dataclass
class Stack:
    """Running services and the environment that points funnel (and its workers) at them."""

    workdir: Path
    settings: dict[str, str]
    client_env: dict[str, str] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    pg_data: Path | None = None
    pg_dir: Path | None = None
    # the MLflow user the worker runs as (created by create_worker_user)
    worker_credentials: dict[str, str] = field(default_factory=dict)

    # -- helpers ----------------------------------------------------------------------------
    def log(self, name: str) -> Path:
        return self.workdir / f"{name}.log"

    def tail(self, name: str, lines: int = 40) -> str:
        path = self.log(name)
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def spawn(self, name: str, command: list[str], env: dict[str, str]) -> None:
        with self.log(name).open("ab") as out:
            self.processes[name] = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=self.workdir,
                start_new_session=True,
            )

    def wait_http(self, name: str, url: str, timeout: float, accept: tuple[int, ...] = (200,)) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            process = self.processes.get(name)
            if process is not None and process.poll() is not None:
                raise StackError(f"{name} exited with {process.returncode}:\n{self.tail(name)}")
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status in accept:
                        return
            except urllib.error.HTTPError as error:
                if error.code in accept:
                    return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.5)
        raise StackError(f"{name} did not answer {url} within {timeout:.0f} s:\n{self.tail(name)}")

    def base_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
        env["PREFECT_HOME"] = str(self.workdir / "prefect-home")
        return env

    # -- services ---------------------------------------------------------------------------
    def start_postgres(self) -> str:
        """A throw-away cluster on a free port; returns ``user:password@host:port``."""
        s = self.settings
        binaries = postgres_bin()
        self.pg_dir = Path(tempfile.mkdtemp(prefix="funnel-stack-pg-"))
        self.pg_data = self.pg_dir / "data"
        password_file = self.pg_dir / "password"
        password_file.write_text(s["POSTGRES_PASSWORD"] + "\n")
        as_postgres: list[str] = []
        if os.geteuid() == 0:  # initdb refuses to run as root: the cluster belongs to `postgres`
            shutil.chown(self.pg_dir, "postgres", "postgres")
            shutil.chown(password_file, "postgres", "postgres")
            as_postgres = ["runuser", "-u", "postgres", "--"]
        port = int(s["POSTGRES_PORT"])
        run = {"capture_output": True, "text": True}
        init = subprocess.run([*as_postgres, str(binaries / "initdb"), "-D", str(self.pg_data), "-U",
                               s["POSTGRES_USER"], f"--pwfile={password_file}", "-A", "scram-sha-256",
                               "-E", "UTF8", "--no-sync"], **run)
        if init.returncode:
            raise StackError(f"initdb failed:\n{init.stderr}")
        start = subprocess.run([*as_postgres, str(binaries / "pg_ctl"), "-D", str(self.pg_data), "-w",
                                "-l", str(self.pg_dir / "postgres.log"), "-o",
                                f"-p {port} -c listen_addresses={HOST} -k {self.pg_dir} -c fsync=off",
                                "start"], **run)
        if start.returncode:
            log = (self.pg_dir / "postgres.log").read_text(errors="replace")
            raise StackError(f"PostgreSQL did not start:\n{start.stderr}\n{log}")
        databases = " ".join(s[key] for key in ("MLFLOW_DB", "PREFECT_DB", "MLFLOW_AUTH_DB", "FUNNEL_LOCK_DB"))
        env = {**os.environ, "POSTGRES_USER": s["POSTGRES_USER"], "FUNNEL_DATABASES": databases,
               "PGHOST": HOST, "PGPORT": str(port), "PGPASSWORD": s["POSTGRES_PASSWORD"]}
        created = subprocess.run(["sh", str(INFRA / "postgres" / "create-databases.sh")], env=env, **run)
        if created.returncode:
            raise StackError(f"creating the databases failed:\n{created.stderr}")
        return f"{s['POSTGRES_USER']}:{s['POSTGRES_PASSWORD']}@{HOST}:{port}"

    def start_s3(self) -> str:
        """moto's S3 server with the MLflow and DVC buckets (MinIO's role in compose), enforcing
        access like MinIO: an admin key, and the workers' key for the DVC bucket only
        (``s3_setup.py``; the keys replace MINIO_ROOT_* and MINIO_WORKER_*)."""
        import json

        s = self.settings
        port = free_port()
        url = f"http://{HOST}:{port}"
        setup = INFRA / "packages" / "s3_setup.py"
        actions = next(line.split("=")[1].strip() for line in setup.read_text().splitlines()
                       if line.startswith("SETUP_ACTIONS"))
        self.spawn("s3", [executable("moto_server"), "-H", HOST, "-p", str(port)],
                   {**self.base_env(), "INITIAL_NO_AUTH_ACTION_COUNT": actions})
        self.wait_http("s3", f"{url}/moto-api/", timeout=60)
        made = subprocess.run([sys.executable, str(setup), url, s["AWS_DEFAULT_REGION"], s["MLFLOW_ARTIFACTS_BUCKET"],
                               s["DVC_BUCKET"]], env=self.base_env(), capture_output=True, text=True)
        if made.returncode:
            raise StackError(f"creating the buckets and users failed:\n{made.stderr[-3000:]}")
        keys = json.loads(made.stdout)
        s["MINIO_ROOT_USER"], s["MINIO_ROOT_PASSWORD"] = keys["admin"]["id"], keys["admin"]["secret"]
        s["MINIO_WORKER_USER"], s["MINIO_WORKER_PASSWORD"] = keys["funnel-worker"]["id"], keys["funnel-worker"]["secret"]
        return url

    def start_mlflow(self, pg: str, s3_url: str) -> str:
        s = self.settings
        port = free_port()
        env = {**self.base_env(), **self.s3_env(s3_url),
               "MLFLOW_BACKEND_STORE_URI": f"postgresql+psycopg://{pg}/{s['MLFLOW_DB']}",
               "MLFLOW_ARTIFACTS_DESTINATION": f"s3://{s['MLFLOW_ARTIFACTS_BUCKET']}",
               "MLFLOW_AUTH_DATABASE_URI": f"postgresql+psycopg://{pg}/{s['MLFLOW_AUTH_DB']}",
               "MLFLOW_AUTH_CONFIG_PATH": str(self.workdir / "mlflow-basic-auth.ini"),
               "MLFLOW_ALLOWED_HOSTS": f"{HOST}:{port},localhost:{port}",
               "MLFLOW_FLASK_SERVER_SECRET_KEY": s["MLFLOW_FLASK_SERVER_SECRET_KEY"],
               "MLFLOW_TRACKING_USERNAME": s["MLFLOW_TRACKING_USERNAME"],
               "MLFLOW_TRACKING_PASSWORD": s["MLFLOW_TRACKING_PASSWORD"],
               "MLFLOW_HOST": HOST, "MLFLOW_PORT": str(port)}
        self.spawn("mlflow", ["sh", str(INFRA / "mlflow" / "start.sh")], env)
        url = f"http://{HOST}:{port}"
        self.wait_http("mlflow", f"{url}/health", timeout=180)
        return url

    def start_prefect(self, pg: str) -> str:
        s = self.settings
        port = free_port()
        env = {**self.base_env(),
               "PREFECT_API_DATABASE_CONNECTION_URL": f"postgresql+asyncpg://{pg}/{s['PREFECT_DB']}",
               "PREFECT_SERVER_API_AUTH_STRING": s["PREFECT_AUTH_STRING"],
               "PREFECT_UI_API_URL": f"http://{HOST}:{port}/api"}
        self.spawn("prefect-server", [executable("prefect"), "server", "start", "--host", HOST,
                                      "--port", str(port)], env)
        url = f"http://{HOST}:{port}/api"
        self.wait_http("prefect-server", f"{url}/health", timeout=240)
        return url

    def s3_env(self, s3_url: str) -> dict[str, str]:
        s = self.settings
        return {"AWS_ACCESS_KEY_ID": s["MINIO_ROOT_USER"], "AWS_SECRET_ACCESS_KEY": s["MINIO_ROOT_PASSWORD"],
                "AWS_DEFAULT_REGION": s["AWS_DEFAULT_REGION"], "AWS_ENDPOINT_URL": s3_url,
                "MLFLOW_S3_ENDPOINT_URL": s3_url,
                # artifacts stream through the MLflow server: moto's access checks cannot read the
                # presigned URLs MLflow would hand out for direct downloads (MinIO's can)
                "MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD": "false"}

    def create_worker_user(self) -> dict[str, str]:
        """The workers' own MLflow user (not the admin: infra/mlflow/create-worker-user.py);
        returns the credentials the worker's environment gets."""
        s = self.settings
        worker = {"MLFLOW_TRACKING_USERNAME": s["MLFLOW_WORKER_USERNAME"],
                  "MLFLOW_TRACKING_PASSWORD": s["MLFLOW_WORKER_PASSWORD"],
                  # the DVC bucket's user (not the S3 admin): MLflow's artifacts go through its server
                  "AWS_ACCESS_KEY_ID": s["MINIO_WORKER_USER"], "AWS_SECRET_ACCESS_KEY": s["MINIO_WORKER_PASSWORD"]}
        env = {**self.base_env(), **self.client_env, "MLFLOW_WORKER_USERNAME": worker["MLFLOW_TRACKING_USERNAME"],
               "MLFLOW_WORKER_PASSWORD": worker["MLFLOW_TRACKING_PASSWORD"]}
        made = subprocess.run([sys.executable, str(INFRA / "mlflow" / "create-worker-user.py")], env=env,
                              capture_output=True, text=True)
        if made.returncode:
            raise StackError(f"creating the MLflow worker user failed:\n{made.stdout}\n{made.stderr[-3000:]}")
        return worker

    def start_worker(self, extra_env: dict[str, str] | None = None) -> None:
        """A process work pool and a worker polling it, with funnel's settings in its environment
        (and the workers' own MLflow user, not the admin)."""
        pool = self.settings["PREFECT_WORK_POOL"]
        env = {**self.base_env(), **self.client_env, **self.worker_credentials, **(extra_env or {}),
               "PREFECT_WORKER_QUERY_SECONDS": "2"}
        made = subprocess.run([executable("prefect"), "work-pool", "create", pool, "--type", "process",
                               "--overwrite"], env=env, capture_output=True, text=True)
        if made.returncode:
            raise StackError(f"creating work pool {pool} failed:\n{made.stdout}\n{made.stderr}")
        self.spawn("prefect-worker", [executable("prefect"), "worker", "start", "--pool", pool,
                                      "--type", "process"], env)
        deadline = time.monotonic() + 120
        while "started!" not in self.log("prefect-worker").read_text(errors="replace"):
            if self.processes["prefect-worker"].poll() is not None or time.monotonic() > deadline:
                raise StackError(f"the Prefect worker did not start:\n{self.tail('prefect-worker')}")
            time.sleep(0.5)

    def start(self, worker_env: dict[str, str] | None = None) -> Stack:
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            pg = self.start_postgres()
            s3_url = self.start_s3()
            mlflow_url = self.start_mlflow(pg, s3_url)
            prefect_url = self.start_prefect(pg)
            s = self.settings
            self.client_env = {
                **self.s3_env(s3_url),
                "MLFLOW_TRACKING_URI": mlflow_url,
                "MLFLOW_TRACKING_USERNAME": s["MLFLOW_TRACKING_USERNAME"],
                "MLFLOW_TRACKING_PASSWORD": s["MLFLOW_TRACKING_PASSWORD"],
                "PREFECT_API_URL": prefect_url,
                "PREFECT_API_AUTH_STRING": s["PREFECT_AUTH_STRING"],
                "FUNNEL_DVC_REMOTE": f"s3://{s['DVC_BUCKET']}/funnel",
                "FUNNEL_POSTGRES_URL": f"postgresql://{pg}",
                # the lock every worker shares (compose: the same database on its PostgreSQL)
                "FUNNEL_LOCK_URL": f"postgresql://{pg}/{s['FUNNEL_LOCK_DB']}",
            }
            self.worker_credentials = self.create_worker_user()
            self.start_worker(worker_env)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for name in reversed(list(self.processes)):
            process = self.processes.pop(name)
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
        if self.pg_data is not None and (self.pg_data / "postmaster.pid").exists():
            as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
            subprocess.run([*as_postgres, str(postgres_bin() / "pg_ctl"), "-D", str(self.pg_data), "-m",
                            "fast", "-w", "stop"], capture_output=True)
        if self.pg_dir is not None:
            shutil.rmtree(self.pg_dir, ignore_errors=True)
            self.pg_dir = None


def new_stack(workdir: Path) -> Stack:
    """A stack with the compose settings, fresh secrets and free ports (not started yet)."""
    settings = read_env_example()
    for key in ("POSTGRES_PASSWORD", "MINIO_ROOT_PASSWORD", "MLFLOW_TRACKING_PASSWORD",
                "MLFLOW_FLASK_SERVER_SECRET_KEY"):
        settings[key] = secrets.token_hex(16)
    settings["PREFECT_AUTH_STRING"] = f"admin:{secrets.token_hex(16)}"
    settings["MLFLOW_WORKER_PASSWORD"] = secrets.token_hex(16)
    settings["POSTGRES_PORT"] = str(free_port())
    return Stack(workdir=workdir, settings=settings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["up"], help="start the stack and keep it running until Ctrl-C")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "funnel-stack",
                        help="where logs and Prefect's home go")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # `kill` stops the services like Ctrl-C
    stack = new_stack(args.dir).start()
    try:
        print("# the stack is up; point funnel at it with:")  # noqa: T201
        for key, value in stack.client_env.items():
            print(f"export {key}={value}")  # noqa: T201
        print(f"# logs: {args.dir}/*.log; Ctrl-C stops every service")  # noqa: T201
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
