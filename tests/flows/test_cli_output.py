"""What the CLI prints (tables, JSON, progress from log records) and its usage-error exit codes.

No training and no engines here: the progress display is fed hand-made LogRecords shaped like the
ones Prefect and components.training.fit write.
"""

from __future__ import annotations

import io
import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from flows.cli import app, output, render_table
from flows.cli.app import FAILED, OK, USAGE, exit_code_for
from flows.cli.output import RetrainProgress, run_progress

ROOT = Path(__file__).resolve().parents[2]


def flow_record(use_case: str, message: str, level: int = logging.INFO) -> logging.LogRecord:
    record = logging.LogRecord("prefect.flow_runs", level, __file__, 1, message, None, None)
    record.flow_run_name, record.flow_name = f"retrain-{use_case}", "retrain"
    return record


def task_record(use_case: str, task: str, state: str = "Completed()") -> logging.LogRecord:
    record = logging.LogRecord("prefect.task_runs", logging.INFO, __file__, 1, f"Finished in state {state}", None, None)
    record.flow_run_name, record.flow_name = f"retrain-{use_case}", "retrain"
    record.task_run_name, record.task_name = f"{task}-1a2", task
    return record


def epoch_record(epoch: int, max_epochs: int, model: str = "tabular_classifier") -> logging.LogRecord:
    metrics = {"loss": 0.5 / epoch, "val_loss": 0.6 / epoch, "val_auc": 0.8}
    shown = " ".join(f"{k}={v:.4f}" for k, v in metrics.items())
    record = logging.LogRecord("components.training.fit", logging.INFO, __file__, 1, "%s epoch %d/%d %s",
                               (model, epoch, max_epochs, shown), None)
    record.epoch, record.max_epochs, record.model, record.metrics = epoch, max_epochs, model, metrics
    return record


def other_record(name: str, message: str, level: int = logging.INFO) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, message, None, None)


def a_run(use_case: str = "intent", epochs: int = 3) -> list[logging.LogRecord]:
    """The records of one retrain run up to the end of training."""
    records = [flow_record(use_case, f"Beginning subflow run 'retrain-{use_case}' for flow 'retrain'")]
    records += [task_record(use_case, t) for t in ("load_context", "ingest", "validate", "version")]
    records += [epoch_record(e, 8) for e in range(1, epochs + 1)]
    return records


def console_to(buffer: io.StringIO, terminal: bool) -> Console:
    return Console(file=buffer, force_terminal=terminal, width=140, color_system="standard" if terminal else None)


# -- plain mode: no terminal, or --json


def test_plain_mode_prints_one_line_per_record_with_use_case_and_stage():
    buffer = io.StringIO()
    handler = RetrainProgress(console_to(buffer, terminal=False), live=False)
    for record in [*a_run(epochs=2), other_record("py.warnings", "UserWarning: careful\n  warnings.warn(", logging.WARNING),
                   task_record("intent", "train"), flow_record("intent", "intent v1: gate passed")]:
        handler.handle(record)
    lines = buffer.getvalue().splitlines()
    assert len(lines) == 10  # one line per record, the warning's traceback line dropped
    assert "intent · load_context  Finished in state Completed()" in lines[1]
    assert "intent · train  tabular_classifier epoch 1/8 loss=0.5000" in lines[5]
    assert "intent · train  tabular_classifier epoch 2/8" in lines[6]
    assert "py.warnings  WARNING UserWarning: careful" in lines[7]
    assert lines[9].endswith(" intent  intent v1: gate passed")
    assert "\x1b[" not in buffer.getvalue()  # no colour codes in a log


def test_plain_mode_prints_a_failed_runs_first_line_without_the_traceback():
    buffer = io.StringIO()
    handler = RetrainProgress(console_to(buffer, terminal=False), live=False)
    try:
        raise KeyError("boom")
    except KeyError:
        record = flow_record("intent", "Encountered exception during execution: KeyError('boom')", logging.ERROR)
        record.exc_info = sys.exc_info()
    handler.handle(record)
    assert buffer.getvalue().splitlines() == [
        f"{buffer.getvalue()[:8]} intent  ERROR Encountered exception during execution: KeyError('boom')"]


def test_plain_mode_tracks_stages_in_flow_order():
    handler = RetrainProgress(console_to(io.StringIO(), terminal=False), live=False)
    for record in a_run(epochs=0):
        handler.handle(record)
    assert handler.stages["intent"] == "train"
    handler.handle(task_record("intent", "train"))
    assert handler.stages["intent"] == "evaluate"
    handler.handle(task_record("intent", "evaluate", "Failed('boom')"))
    assert handler.stages["intent"] == "evaluate failed"


# -- live mode: a terminal


def test_live_mode_shows_a_row_per_use_case_with_an_epoch_bar():
    buffer = io.StringIO()
    handler = RetrainProgress(console_to(buffer, terminal=True), live=True)
    handler.start()
    try:
        for record in a_run(epochs=3):
            handler.handle(record)
        row = handler.progress.tasks[0]
        assert (row.description, row.completed, row.total) == ("intent", 3, 8)
        assert row.fields["stage"] == "train tabular_classifier"
        assert row.fields["epochs"] == "epoch 3/8"
        assert row.fields["detail"] == "loss=0.1667 val_loss=0.2000"
        handler.handle(other_record("components.release.registry", "registered intent v1 as @challenger"))
        handler.handle(task_record("intent", "train"))
        assert handler.progress.tasks[0].fields["stage"] == "evaluate"
        handler.handle(flow_record("intent", "Finished in state Completed()"))
        done = handler.progress.tasks[0]
        assert (done.fields["state"], done.fields["stage"], done.completed, done.total) == ("promoted", "promoted", 3, 3)

        # a second use case gets its own row; a gate failure ends it as "not promoted"
        for record in a_run("fraud", epochs=1):
            handler.handle(record)
        assert [t.description for t in handler.progress.tasks] == ["intent", "fraud"]
        handler.handle(flow_record("fraud", "Finished in state Failed('Flow run encountered an exception: "
                                            "GateFailedError: fraud v1 did not pass the promotion gate')"))
        assert handler.progress.tasks[1].fields["state"] == "not promoted"
        handler.handle(flow_record("fraud", "Beginning subflow run 'retrain-fraud' for flow 'retrain'"))
        assert handler.progress.tasks[1].fields["state"] == "running"  # a backfill's next date starts over
    finally:
        handler.stop()
    shown = buffer.getvalue()
    assert "registered intent v1 as @challenger" in shown  # printed above the display
    assert "Beginning subflow run" not in shown  # engine chatter becomes the rows, not lines
    assert "intent" in shown
    assert "fraud" in shown


def test_records_of_other_runs_are_named_by_their_run():
    handler = RetrainProgress(console_to(io.StringIO(), terminal=False), live=False)
    task = other_record("prefect.task_runs", "Finished in state Completed()")
    task.flow_run_name, task.flow_name, task.task_run_name, task.task_name = "clever-fox", "retrain-all", "retrain_one-7f1", "retrain_one"
    flow = other_record("prefect.flow_runs", "skipping ctr: no data", logging.WARNING)
    flow.flow_run_name, flow.flow_name = "clever-fox", "retrain-all"
    assert handler.where(task) == "retrain_one-7f1"
    assert handler.where(flow) == "clever-fox"
    assert handler.where(other_record("py.warnings", "x")) == "py.warnings"


def test_stdout_goes_to_stderr_while_json_is_kept_for_the_end(capsys):
    with output.stdout_to_stderr():
        print("MLflow chatter")  # noqa: T201
    output.print_json({"ok": True})
    captured = capsys.readouterr()
    assert json.loads(captured.out) == {"ok": True}
    assert "MLflow chatter" in captured.err


@pytest.mark.parametrize(("message", "state"), [
    ("Finished in state Completed()", "promoted"),
    ("Finished in state Failed('... ReviewError: intent v2 was rejected')", "not promoted"),
    ("Finished in state Failed('... DataValidationError: data for intent failed validation')", "invalid data"),
    ("Finished in state Failed('... KeyError: x')", "failed"),
    ("Finished in state Crashed()", "failed"),
])
def test_final_state_of_a_flow_run(message, state):
    assert output.final_state(message) == state


def test_run_progress_takes_the_place_of_prefects_console_handler_and_restores_it():
    class PrefectConsoleHandler(logging.StreamHandler):  # stands in for prefect.logging.handlers'
        pass

    root, components = logging.getLogger(), logging.getLogger("components")
    prefect_console = PrefectConsoleHandler(io.StringIO())
    root.addHandler(prefect_console)
    level = components.level
    components.setLevel(logging.WARNING)
    try:
        with run_progress(plain=True) as handler:
            assert prefect_console not in root.handlers
            assert handler in root.handlers
            assert components.getEffectiveLevel() == logging.INFO
            assert not handler.live
            logging.getLogger("components.training.fit").info("m epoch 1/2", extra={"epoch": 1, "max_epochs": 2})
        assert handler not in root.handlers
        assert prefect_console in root.handlers
        assert components.level == logging.WARNING
        assert prefect_console.stream.getvalue() == ""  # the record went to the progress handler only
    finally:
        root.removeHandler(prefect_console)
        components.setLevel(level)


def test_run_progress_is_plain_without_a_terminal(capsys):
    with run_progress() as handler:
        logging.getLogger("components.training.fit").info("m epoch 1/2", extra={"epoch": 1, "max_epochs": 2})
    assert not handler.live  # pytest's stderr is not a terminal
    assert "m epoch 1/2" in capsys.readouterr().err


# -- tables and JSON


def test_tables_colour_statuses_on_a_terminal_and_stay_plain_in_a_log(monkeypatch):
    rows = [["intent", "promoted"], ["fraud", "not promoted"], ["ctr", "invalid data"], ["x", "error"]]
    table = output.build_table(rows, ("use case", "status"), status_column=1)
    coloured = io.StringIO()
    console_to(coloured, terminal=True).print(table)
    text = coloured.getvalue()
    assert "\x1b[32mpromoted" in text
    assert "\x1b[33mnot promoted" in text
    assert "\x1b[31minvalid data" in text
    assert "\x1b[31merror" in text

    monkeypatch.delenv("COLUMNS", raising=False)
    console = output.make_console()
    assert not console.is_terminal
    plain = io.StringIO()
    console.file = plain
    long = [["intent", "promoted", "x" * 150, "[bold]kept as text[/bold]"]]
    console.print(output.build_table(long, ("use case", "status", "wide", "markup")))
    lines = plain.getvalue().splitlines()
    assert len(lines) == 3  # header, rule, one row: no wrapping at 80 columns in a CI log
    assert "x" * 150 in lines[2]
    assert "[bold]kept as text[/bold]" in lines[2]
    assert "\x1b[" not in plain.getvalue()


def test_json_output_is_strict_json():
    document = {"metrics": {"roc_auc": 0.9, "pr_auc": float("nan"), "n": 3}, "path": Path("/x"), "list": (1, None)}
    assert output.to_jsonable(document) == {"metrics": {"roc_auc": 0.9, "pr_auc": None, "n": 3}, "path": "/x",
                                            "list": [1, None]}
    json.loads(json.dumps(output.to_jsonable(document), allow_nan=False))


def test_render_table_stays_a_plain_string_for_the_benchmarks():
    assert render_table([["a", "1"]], ("name", "n")).splitlines() == ["name  n", "----  -", "a     1"]


# -- exit codes of usage errors (nothing runs)


@pytest.fixture
def bare_repo(tmp_path, monkeypatch) -> Path:
    """params.yaml and dvc.yaml only: enough for usage checks, nothing to train on."""
    for name in ("params.yaml", "dvc.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    monkeypatch.setenv("FUNNEL_REPO_ROOT", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_exit_codes_of_funnel_errors():
    from components.errors import (
        ConfigError,
        DataUnavailableError,
        FunnelError,
        LedgerError,
        UnknownUseCaseError,
    )

    assert exit_code_for(ConfigError("x")) == USAGE
    assert exit_code_for(UnknownUseCaseError("x", ["intent"])) == USAGE
    for runtime in (FunnelError("x"), LedgerError("x"), DataUnavailableError("x")):
        assert exit_code_for(runtime) == FAILED
    assert (OK, FAILED, USAGE) == (0, 1, 2)


@pytest.mark.parametrize(("args", "says"), [
    (["retrain", "nosuch"], "unknown use case 'nosuch'"),
    (["retrain", "intent", "--set", "bad"], "expected key=value"),
    (["retrain", "intent", "--set", "use_cases.intent.nosuch.x=3"], "'nosuch' is not a key of params.yaml"),
    (["retrain", "intent", "--set", "use_cases.intent.train.nosuch=3"], "train.nosuch: unknown key"),
    (["retrain"], "give one USE_CASE or --all"),
    (["retrain", "intent", "--all"], "give one USE_CASE or --all"),
    (["retrain", "intent", "--no-such-option"], "No such option"),
    (["backfill", "intent", "--from", "2024-13-01", "--to", "2024-12-31"], "expected a date"),
    (["history", "nosuch"], "unknown use case 'nosuch'"),
    (["score", "nosuch", "rows.csv"], "unknown use case 'nosuch'"),
])
def test_usage_errors_exit_2_with_the_reason_on_stderr(bare_repo, args, says):
    result = CliRunner().invoke(app, args)
    assert result.exit_code == USAGE, result.output
    assert says in result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.output


def test_list_json_is_one_document(bare_repo, monkeypatch):
    monkeypatch.delenv("FUNNEL_DATA_MIRROR", raising=False)
    result = CliRunner().invoke(app, ["list", "--json"])
    assert result.exit_code == OK, result.output
    entries = json.loads(result.stdout)
    assert [e["use_case"] for e in entries][:2] == ["intent", "sentiment"]
    intent = entries[0]["data"]
    assert intent["kind"] == "unavailable"
    assert "intent" in intent["error"]


def test_the_console_script_returns_the_usage_exit_code(bare_repo):
    script = Path(sys.executable).parent / "funnel"
    done = subprocess.run([str(script), "retrain", "nosuch"], capture_output=True, text=True, cwd=bare_repo,
                          timeout=120)
    assert done.returncode == USAGE
    assert done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        "unknown use case 'nosuch'; params.yaml has: answers, campaign, coldstart, ctr, fraud, intent, recommend, "
        "sentiment, sessions, slots, support, topics. A use case is a section under use_cases: in params.yaml (README: "
        "Bring your own data); `funnel list` shows them."]


def test_params_schema_is_valid_json_schema_that_params_yaml_meets_and_a_typo_breaks():
    import jsonschema
    import yaml
    from typer.testing import CliRunner

    from flows.cli import app

    result = CliRunner().invoke(app, ["params", "schema"])
    assert result.exit_code == 0, result.output
    schema = json.loads(result.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    jsonschema.validate(raw, schema)
    raw["use_cases"]["sentiment"]["train"]["max_epoch"] = 3  # a typo of max_epochs
    with pytest.raises(jsonschema.ValidationError, match="max_epoch"):
        jsonschema.validate(raw, schema)


def test_params_show_prints_the_section_with_its_defaults_and_overrides():
    import yaml
    from typer.testing import CliRunner

    from flows.cli import app

    result = CliRunner().invoke(app, ["params", "show", "intent", "--set", "use_cases.intent.gate.min_delta=0.02"])
    assert result.exit_code == 0, result.output
    shown = yaml.safe_load(result.stdout)["intent"]
    assert shown["train"]["hidden_units"] == [128, 64]      # from defaults.builder.tabular
    assert shown["gate"]["on_schema_change"] == "review"   # from defaults.task.binary
    assert shown["gate"]["min_delta"] == 0.02              # the override
    assert shown["evaluate"]["lift_fractions"] == [0.1, 0.2]
