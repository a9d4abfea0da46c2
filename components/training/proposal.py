"""A tuning result as a proposed change to params.yaml: ``--set`` lines and a unified diff of the
file's text (comments and layout kept), never written to the file."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Any

import yaml

from components.errors import ConfigError
from components.overrides import apply_overrides, load_yaml, merge_defaults

INDENT = 2


def yaml_value(value: Any) -> str:
    """``value`` as one line of YAML (flow style: lists as ``[128, 64]``)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    return text.removesuffix("\n...").removesuffix("...").strip()


def set_lines(use_case: str, values: Mapping[str, Any]) -> list[str]:
    """``--set use_cases.<name>.<path>=<value>`` for every proposed value."""
    return [f"--set 'use_cases.{use_case}.{path}={yaml_value(value)}'" for path, value in values.items()]


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _meaningful(line: str) -> bool:
    stripped = line.strip()
    return bool(stripped) and not stripped.startswith("#")


def _block_end(lines: list[str], start: int, indent: int, end: int) -> int:
    """The line after the block of the key at ``start`` (indented ``indent``)."""
    last = start
    for number in range(start + 1, end):
        if _meaningful(lines[number]):
            if _indent(lines[number]) <= indent:
                break
            last = number
    return last + 1


def _find_key(lines: list[str], key: str, start: int, end: int, parent_indent: int) -> tuple[int, int] | None:
    """(line, indent) of ``key:`` among the direct children of the block ``start..end``."""
    pattern = re.compile(rf"^( *){re.escape(key)}:(\s|$)")
    child_indent = None
    for number in range(start, end):
        line = lines[number]
        if not _meaningful(line) or _indent(line) <= parent_indent:
            continue
        child_indent = _indent(line) if child_indent is None else child_indent
        match = pattern.match(line)
        if match and len(match.group(1)) == child_indent:
            return number, child_indent
    return None


def _set_value(lines: list[str], parts: list[str], value: Any) -> list[str]:
    """``lines`` with the block-style key path ``parts`` set to ``value`` (keys added where missing)."""
    lines = list(lines)
    start, end, parent_indent = 0, len(lines), -1
    for depth, part in enumerate(parts):
        found = _find_key(lines, part, start, end, parent_indent)
        if found is None:  # add the rest of the path at the end of the parent block
            indent = parent_indent + INDENT
            added = [f"{' ' * (indent + INDENT * i)}{p}:" for i, p in enumerate(parts[depth:-1])]
            added.append(f"{' ' * (indent + INDENT * len(parts[depth:-1]))}{parts[-1]}: {yaml_value(value)}")
            at = end
            while at > start and not lines[at - 1].strip():
                at -= 1
            return lines[:at] + added + lines[at:]
        number, indent = found
        block_end = _block_end(lines, number, indent, end)
        if depth == len(parts) - 1:
            rest = lines[number].split(":", 1)[1]
            comment = re.search(r"\s+#.*$", rest) if not re.search(r"""['"]""", rest) else None
            tail = comment.group(0) if comment else ""
            new = f"{' ' * indent}{part}: {yaml_value(value)}{tail}"
            return lines[:number] + [new] + lines[block_end:]
        if lines[number].split(":", 1)[1].split("#", 1)[0].strip():
            raise ConfigError(f"{'.'.join(parts[:depth + 1])} is written inline; the diff edits block-style keys only")
        start, end, parent_indent = number + 1, block_end, indent
    return lines


def propose_diff(text: str, use_case: str, values: Mapping[str, Any], filename: str = "params.yaml") -> str:
    """A unified diff that sets ``use_cases.<use_case>.<path>`` to each value in params.yaml's
    ``text``; empty when nothing changes. Checked: the edited file reads as the old one with
    exactly these values set (their defaults included), else ConfigError."""
    lines = text.splitlines()
    for path, value in values.items():
        lines = _set_value(lines, ["use_cases", use_case, *path.split(".")], value)
    new_text = "\n".join(lines) + ("\n" if text.endswith("\n") else "")
    expected = apply_overrides(merge_defaults(load_yaml(text)), {f"use_cases.{use_case}.{p}": v for p, v in values.items()})
    if merge_defaults(load_yaml(new_text)) != expected:
        raise ConfigError(f"the proposed params.yaml edit for {use_case} does not read back as the tuned values; "
                          "apply the --set lines by hand")
    return "".join(difflib.unified_diff(text.splitlines(keepends=True), new_text.splitlines(keepends=True),
                                        f"a/{filename}", f"b/{filename}"))
