"""The Typer app, its exit codes and the helpers the command modules share.

Exit codes follow Click: 0 success (every run recorded its decision, promoted or not), 1 a run
failed or a command could not do its work at run time, 2 a usage error (bad option or value,
unknown use case, a params.yaml/override problem found before anything ran).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NoReturn

import typer
from typer.core import TyperGroup

from flows.cli import output

OK, FAILED, USAGE = 0, 1, 2


class CommandFailed(SystemExit):
    """Ends the command with ``code`` after its message was printed; ``str()`` is that message (so
    ``CliRunner().invoke(...).exception`` still says what went wrong)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(code)
        self.message = message

    def __str__(self) -> str:
        return self.message


def fail(message: str, code: int = FAILED) -> NoReturn:
    """Print ``message`` as one red error on stderr and exit with ``code``."""
    output.error(message)
    raise CommandFailed(message, code)


def exit_code_for(exc: Exception) -> int:
    """A FunnelError's exit code: configuration and unknown names are usage errors, the rest runtime."""
    from components.errors import ConfigError, UnknownUseCaseError

    return USAGE if isinstance(exc, ConfigError | UnknownUseCaseError) else FAILED


class FunnelGroup(TyperGroup):
    """The root command: a FunnelError from any command becomes a red line and its exit code."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, windows_expand_args: bool = True, **extra: Any) -> Any:
        from components.errors import FunnelError

        try:
            return super().main(args, prog_name, complete_var, standalone_mode, windows_expand_args, **extra)
        except FunnelError as exc:
            if not standalone_mode:
                raise
            fail(str(exc), exit_code_for(exc))


app = typer.Typer(
    cls=FunnelGroup,
    help="funnel: retrain, validate, version, gate and promote the shop's conversion models.",
    no_args_is_help=True,
    add_completion=False,
)

TRAINING, REGISTRY, OPERATIONS = "Training", "Registry and review", "Operations"


def parse_overrides(pairs: list[str] | None) -> dict[str, str]:
    """``--set key.path=value`` pairs; a pair without ``=``, or whose value is not YAML, is a usage error."""
    overrides = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"expected key=value, got {pair!r}", param_hint="--set")
        check_yaml_value(key.strip(), value.strip())
        overrides[key.strip()] = value.strip()
    return overrides


def check_yaml_value(key: str, value: str) -> None:
    """A ``--set`` value must parse as YAML (it is read as params.yaml is): else a usage error
    saying where it breaks."""
    import yaml

    from components.overrides import load_yaml

    try:
        load_yaml(value)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at character {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise typer.BadParameter(
            f"the value of {key} is not valid YAML ({problem}{where}): {value!r}. Close every bracket and "
            "quote strings holding YAML characters such as ': ' or '#', e.g. --set 'key=\"a: b\"'",
            param_hint="--set") from None


def parse_date(value: str, option: str):
    from datetime import date

    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"expected a date YYYY-MM-DD, got {value!r}", param_hint=option) from None


def settings_and_params(overrides: dict[str, Any] | None = None):
    from components.config import load_params, load_settings

    settings = load_settings()
    return settings, load_params(settings.params_path, overrides)


def check_use_cases(params, names: list[str] | None) -> None:
    """Every name must be a use case of params.yaml (UnknownUseCaseError: a usage error)."""
    from components.errors import UnknownUseCaseError

    for name in names or []:
        if name not in params.use_cases:
            raise UnknownUseCaseError(name, list(params.use_cases))


def format_metrics(metrics: dict | None, names: tuple[str, ...]) -> str:
    import math

    if not metrics:
        return "-"
    shown = [f"{n}={metrics[n]:.3f}" for n in names if n in metrics and not math.isnan(metrics[n])]
    return " ".join(shown) or "-"


def main() -> None:
    """The ``funnel`` console script."""
    app()
