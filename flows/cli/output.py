"""What the CLI shows: rich tables, JSON documents, red error lines, and the retrain progress display.

Nothing here forces a terminal: rich drops colour and cursor moves when the stream is not a TTY, and
tables are then laid out at a generous width so a row stays one line in a CI log.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, redirect_stdout
from typing import Any

import typer
from rich import box
from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

# Width used when the stream is not a terminal and COLUMNS is unset (rich would wrap at 80).
LOG_WIDTH = 1000

STATUS_STYLES = {
    "promoted": "green",
    "not promoted": "yellow",
    "invalid data": "red",
    "error": "red",
    "failed": "red",
    "skipped": "dim",
}


def make_console(stderr: bool = False) -> Console:
    """A console on stdout (or stderr), made per call so it follows the streams in use (CliRunner swaps them)."""
    console = Console(stderr=stderr, highlight=False, soft_wrap=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = LOG_WIDTH
    return console


def styled(text: str, style: str) -> Text:
    """Text printed as it is (no markup), in ``style`` on a terminal."""
    return Text(text, style=style)


def status_text(status: str) -> Text:
    return styled(status, STATUS_STYLES.get(status, ""))


def _cell(value: Any) -> Text:
    # Text, never a markup string: values like "[intent] ..." must print as they are.
    return value if isinstance(value, Text) else Text("-" if value is None else str(value))


def build_table(rows: Sequence[Sequence[Any]], headers: Sequence[str], status_column: int | None = None) -> Table:
    """A rich table; the cells of ``status_column`` are coloured by STATUS_STYLES."""
    show_header = any(headers)
    table = Table(box=box.SIMPLE_HEAD if show_header else None, show_header=show_header, header_style="bold",
                  pad_edge=False, show_edge=False)
    for header in headers:
        table.add_column(header, overflow="fold")
    for row in rows:
        table.add_row(*(status_text(str(c)) if i == status_column else _cell(c) for i, c in enumerate(row)))
    return table


def print_table(rows: Sequence[Sequence[Any]], headers: Sequence[str], status_column: int | None = None) -> None:
    make_console().print(build_table(rows, headers, status_column))


def print_pairs(pairs: Mapping[str, Any]) -> None:
    """A two-column table of facts (key, value) without a header."""
    table = build_table([[Text(k, style="bold"), v] for k, v in pairs.items()], ("", ""))
    make_console().print(table)


def to_jsonable(value: Any) -> Any:
    """Plain JSON data: NaN and infinities become null (strict parsers reject them), the rest str()."""
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [to_jsonable(v) for v in value]
    if value is None or isinstance(value, str | int | bool):
        return value
    return str(value)


def print_json(document: Any) -> None:
    """One JSON document on stdout, nothing else."""
    typer.echo(json.dumps(to_jsonable(document), indent=2, ensure_ascii=False))


def error(message: str) -> None:
    """An error as one red message on stderr (no traceback)."""
    make_console(stderr=True).print(Text(message, style="red"), soft_wrap=True)


def warn(message: str) -> None:
    make_console(stderr=True).print(Text(message, style="yellow"), soft_wrap=True)


@contextmanager
def stdout_to_stderr(enabled: bool = True) -> Iterator[None]:
    """While the block runs, what would go to stdout goes to stderr (stdout is kept for one JSON document)."""
    if not enabled:
        yield
        return
    with redirect_stdout(sys.stderr):
        yield


def render_table(rows: list[list[str]], headers: tuple[str, ...]) -> str:
    """A plain-text table as a string (the benchmarks print theirs with it)."""
    widths = [max(len(str(x)) for x in column) for column in zip(headers, *rows, strict=False)]
    line = "  ".join("-" * w for w in widths)
    out = ["  ".join(str(h).ljust(w) for h, w in zip(headers, widths, strict=False)), line]
    out += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)) for row in rows]
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------
# Progress of a retrain run, driven by the log records the flow already writes.

# The retrain flow's tasks, in the order it runs them (flows/retrain.py).
STAGES = ("load_context", "ingest", "validate", "version", "train", "evaluate", "register", "gate",
          "review_report", "promote")
RETRAIN_FLOW = "retrain"
EPOCH_LOGGER = "components.training.fit"
# Engine chatter the live display turns into its rows instead of printing it.
_BEGINNING = ("Beginning flow run", "Beginning subflow run")
_FINISHED = "Finished in state "
# Exceptions that end a run with a recorded decision, and the one that means invalid data.
_NOT_PROMOTED = ("GateFailedError", "ReviewError")
_INVALID = ("DataValidationError",)
_SHOWN_METRICS = ("loss", "val_loss")


def use_case_of(record: logging.LogRecord) -> str | None:
    """The use case a Prefect flow/task record belongs to (flow ``retrain``, run ``retrain-<use case>``)."""
    run = getattr(record, "flow_run_name", None)
    if getattr(record, "flow_name", None) == RETRAIN_FLOW and isinstance(run, str) and run.startswith("retrain-"):
        return run[len("retrain-"):]
    return None


def first_line(record: logging.LogRecord) -> str:
    message = record.getMessage().strip()
    return message.splitlines()[0] if message else ""


def final_state(message: str) -> str:
    """``Finished in state Failed('... GateFailedError ...')`` -> promoted | not promoted | invalid data | failed."""
    state = message[len(_FINISHED):]
    if state.startswith("Completed"):
        return "promoted"
    if any(name in state for name in _NOT_PROMOTED):
        return "not promoted"
    if any(name in state for name in _INVALID):
        return "invalid data"
    return "failed"


def epoch_detail(metrics: Mapping[str, float] | None) -> str:
    metrics = metrics or {}
    names = [n for n in _SHOWN_METRICS if n in metrics] or list(metrics)[:2]
    return " ".join(f"{n}={metrics[n]:.4f}" for n in names)


class _StateColumn(ProgressColumn):
    """A spinner while a use case runs, then a mark coloured by how it ended."""

    marks = {"promoted": "✓", "not promoted": "–", "invalid data": "✗", "failed": "✗"}

    def __init__(self) -> None:
        super().__init__()
        self.spinner = Spinner("dots")

    def render(self, task):
        state = task.fields.get("state", "running")
        if state == "running":
            return self.spinner.render(task.get_time())
        return Text(self.marks.get(state, "•"), style=STATUS_STYLES.get(state, ""))


class _StageColumn(ProgressColumn):
    def render(self, task):
        state = task.fields.get("state", "running")
        return Text(task.fields.get("stage", ""), style=STATUS_STYLES.get(state, "cyan"))


class RetrainProgress(logging.Handler):
    """Shows a retrain run from its log records: one row per use case with its current stage, and
    an epoch bar while a model trains (records of ``components.training.fit`` carry ``epoch``,
    ``max_epochs``, ``model`` and ``metrics``). Stages come from the ``prefect.task_runs`` records
    (each task logs ``Finished in state ...``; the next stage of STAGES is then the running one).

    ``live``: a rich Progress on the console, other records printed above it (one line each).
    Otherwise every record becomes one plain line, ``HH:MM:SS use case · stage  message``.
    """

    def __init__(self, console: Console, live: bool, level: int = logging.INFO) -> None:
        super().__init__(level)
        self.console = console
        self.live = live
        self.rows: dict[str, TaskID] = {}
        self.stages: dict[str, str] = {}
        self.current: str | None = None  # the use case the newest flow/task record came from
        self.progress: Progress | None = None
        if live:
            self.progress = Progress(
                _StateColumn(), TextColumn("{task.description}", style="bold", markup=False), _StageColumn(),
                BarColumn(bar_width=24), TextColumn("{task.fields[epochs]}", markup=False),
                TextColumn("{task.fields[detail]}", style="dim", markup=False), TimeElapsedColumn(),
                console=console, transient=False, refresh_per_second=8,
            )

    # -- lifecycle
    def start(self) -> None:
        if self.progress is not None:
            self.progress.start()

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()

    # -- records
    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._track(record)
            if self.live:
                self._show(record)
            else:
                self._print_plain(record)
        except Exception:
            self.handleError(record)

    def _track(self, record: logging.LogRecord) -> None:
        """Follow use cases and stages (both modes)."""
        use_case = use_case_of(record)
        if use_case is None:
            return
        self.current = use_case
        message = first_line(record)
        if record.name.startswith("prefect.flow_runs"):
            if message.startswith(_BEGINNING):
                self.stages[use_case] = STAGES[0]
                self._row(use_case, reset=True)
            elif message.startswith(_FINISHED):
                self._finish(use_case, final_state(message))
        elif record.name.startswith("prefect.task_runs"):
            task = getattr(record, "task_name", "")
            if message.startswith(_FINISHED) and task in STAGES:
                if message.startswith(f"{_FINISHED}Completed"):
                    following = STAGES.index(task) + 1
                    self.stages[use_case] = STAGES[following] if following < len(STAGES) else "finishing"
                else:
                    self.stages[use_case] = f"{task} failed"
                self._update(use_case)

    def where(self, record: logging.LogRecord) -> str:
        """``use case · stage`` for records of a running use case's tasks and components, ``use case``
        for its flow's messages, else the logger's name."""
        use_case = use_case_of(record)
        if use_case is None and (record.name.startswith("components") or hasattr(record, "epoch")):
            use_case = self.current
        if use_case is None:  # e.g. retrain --all's own flow run and its retrain_one tasks (Dask)
            return getattr(record, "task_run_name", None) or getattr(record, "flow_run_name", None) or record.name
        if record.name.startswith("prefect.flow_runs"):
            return use_case  # the flow's own messages belong to no stage
        stage = getattr(record, "task_name", None) or self.stages.get(use_case, "")
        return f"{use_case} · {stage}" if stage else use_case

    def _print_plain(self, record: logging.LogRecord) -> None:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        level = f"{record.levelname} " if record.levelno >= logging.WARNING else ""
        line = Text(f"{stamp} {self.where(record)}  {level}{first_line(record)}")
        if record.levelno >= logging.ERROR:
            line.stylize("red")
        elif record.levelno >= logging.WARNING:
            line.stylize("yellow")
        self.console.print(line, soft_wrap=True)

    def _show(self, record: logging.LogRecord) -> None:
        if hasattr(record, "epoch") and record.name == EPOCH_LOGGER:
            self._epoch(record)
            return
        message = first_line(record)
        if record.name.startswith("prefect.") and (message.startswith(_BEGINNING) or message.startswith(_FINISHED)) \
                and record.levelno < logging.WARNING:
            return  # shown by the rows
        style = "red" if record.levelno >= logging.ERROR else "yellow" if record.levelno >= logging.WARNING else "dim"
        self.console.print(Text(f"{self.where(record)}  {message}", style=style), soft_wrap=True)

    def _epoch(self, record: logging.LogRecord) -> None:
        use_case = self.current or "training"
        row = self._row(use_case)
        epoch, total = int(getattr(record, "epoch", 0)), int(getattr(record, "max_epochs", 0) or 0)
        assert self.progress is not None
        self.progress.update(
            row, total=total or None, completed=epoch, epochs=f"epoch {epoch}/{total}" if total else f"epoch {epoch}",
            detail=epoch_detail(getattr(record, "metrics", None)),
            stage=f"train {getattr(record, 'model', '')}".strip(),
        )

    # -- rows (live only)
    def _row(self, use_case: str, reset: bool = False) -> TaskID:
        if self.progress is None:
            return TaskID(-1)
        if use_case not in self.rows:
            self.rows[use_case] = self.progress.add_task(
                use_case, total=None, stage=self.stages.get(use_case, ""), epochs="", detail="", state="running")
        elif reset:
            self.progress.reset(self.rows[use_case], total=None, stage=self.stages.get(use_case, ""), epochs="",
                                detail="", state="running")
        return self.rows[use_case]

    def _update(self, use_case: str) -> None:
        if self.progress is not None:
            self.progress.update(self._row(use_case), stage=self.stages.get(use_case, ""))

    def _finish(self, use_case: str, state: str) -> None:
        self.stages[use_case] = state
        if self.progress is None:
            return
        row = self._row(use_case)
        task = next(t for t in self.progress.tasks if t.id == row)
        if state in ("promoted", "not promoted"):  # a full bar: the run is over (early stopping may end training sooner)
            done = max(int(task.completed), 1)
            self.progress.update(row, total=done, completed=done)
        elif task.total is None:  # stopped before training: an empty bar, not a frozen pulse
            self.progress.update(row, total=1, completed=0)
        self.progress.update(row, stage=state, state=state)
        self.progress.stop_task(row)


def _is_prefect_console(handler: logging.Handler) -> bool:
    return any(cls.__name__ == "PrefectConsoleHandler" for cls in type(handler).__mro__)


@contextmanager
def run_progress(plain: bool = False) -> Iterator[RetrainProgress]:
    """Show a flow run's progress on stderr while the block runs: for a retrain, a live display on
    a terminal; plain one-line messages otherwise (or when ``plain``, e.g. with --json, or for the
    one-shot flows score and drift). For that time the handler takes the place of Prefect's console
    handler on the root logger (so lines are not printed twice or across the display, and a failed
    run's traceback is not printed: its first line is) and ``components`` loggers emit INFO; both
    are restored afterwards."""
    console = make_console(stderr=True)
    live = not plain and console.is_terminal and not console.is_dumb_terminal
    handler = RetrainProgress(console, live)
    root, components = logging.getLogger(), logging.getLogger("components")
    replaced = [h for h in root.handlers if _is_prefect_console(h)]
    level = components.level
    for old in replaced:
        root.removeHandler(old)
    root.addHandler(handler)
    components.setLevel(logging.INFO)
    handler.start()
    try:
        yield handler
    finally:
        handler.stop()
        root.removeHandler(handler)
        for old in replaced:
            root.addHandler(old)
        components.setLevel(level)
