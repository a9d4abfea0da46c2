"""How a run's params are layered: the defaults of a use case's task kind and builder under its
section of params.yaml, the ``--set`` overrides over it (pure functions on plain YAML data)."""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

import yaml

from components.errors import ConfigError

# libyaml's parser where PyYAML has it (the pure-Python one: 0.25-0.4 s for params.yaml; libyaml 0.02-0.09 s)
_SAFE_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class ParamsLoader(_SAFE_LOADER):  # type: ignore[valid-type,misc]
    """YAML as params.yaml means it: ``1e9`` and ``1.0e9`` are numbers (YAML 1.2, as DVC reads
    them), not the strings YAML 1.1 makes of exponents without a dot or a sign."""


ParamsLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def load_yaml(text: str) -> Any:
    """Parse YAML text with ``ParamsLoader``."""
    return yaml.load(text, Loader=ParamsLoader)  # noqa: S506 - a SafeLoader subclass

DEFAULT_KINDS = ("task", "builder")


def merge_defaults(raw: dict[str, Any]) -> dict[str, Any]:
    """Each use case's section over the defaults of its task kind and of its builder
    (``defaults.task.<kind>``, ``defaults.builder.<name>``). Merged two levels deep: a use case's
    ``gate.min_delta`` replaces the default's, a whole mapping it sets (``gate.floors``) replaces
    the default's mapping."""
    defaults = raw.get("defaults") or {}
    if not isinstance(defaults, Mapping):
        raise ConfigError("params.defaults: expected a mapping of task / builder defaults")
    unknown = sorted(set(defaults) - set(DEFAULT_KINDS))
    if unknown:
        raise ConfigError(f"params.defaults: unknown key(s) {unknown}; allowed: {list(DEFAULT_KINDS)}")
    merged = copy.deepcopy(raw)
    for name, section in (raw.get("use_cases") or {}).items():
        if not isinstance(section, Mapping):
            continue
        model = section.get("model")
        builder = model.get("builder") if isinstance(model, Mapping) else None
        layers = [(defaults.get("task") or {}).get(section.get("task")),
                  (defaults.get("builder") or {}).get(builder), section]
        result: dict[str, Any] = {}
        for layer in layers:
            for key, value in (layer or {}).items():
                if isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
                    result[key] = {**result[key], **copy.deepcopy(dict(value))}
                else:
                    result[key] = copy.deepcopy(value)
        merged["use_cases"][name] = result
    return merged


def apply_overrides(raw: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy of ``raw`` with dotted keys (``use_cases.intent.train.max_epochs``) replaced.

    Every parent must exist; a new leaf may be added (an optional key left out of params.yaml),
    and the typed sections refuse a misspelt one when the result is validated."""
    result = copy.deepcopy(raw)
    for dotted, value in overrides.items():
        node = result
        *parents, leaf = dotted.split(".")
        for part in parents:
            if not isinstance(node, dict) or part not in node:
                raise ConfigError(f"override {dotted!r}: {part!r} is not a key of params.yaml")
            node = node[part]
        if not isinstance(node, dict):
            raise ConfigError(f"override {dotted!r}: {parents[-1] if parents else dotted!r} is not a mapping")
        node[leaf] = load_yaml(value) if isinstance(value, str) else value
    return result


def effective_params(raw: dict[str, Any], overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """params.yaml as a run uses it: the overrides whose parent keys params.yaml holds (so
    ``use_cases.x.task`` or ``defaults.*`` choose which defaults merge), then the defaults merged
    under each use case, then the overrides of keys only the defaults hold."""
    first: dict[str, Any] = {}
    rest: dict[str, Any] = {}
    for dotted, value in (overrides or {}).items():
        *parents, _ = dotted.split(".")
        node: Any = raw
        for part in parents:
            node = node.get(part) if isinstance(node, Mapping) else None
        (first if isinstance(node, Mapping) else rest)[dotted] = value
    return apply_overrides(merge_defaults(apply_overrides(raw, first)), rest)


def flatten_params(prefix: str, value: Any) -> dict[str, Any]:
    """Dotted keys -> leaf values of nested mappings, pydantic sections and dataclasses (MLflow params)."""
    if isinstance(value, dict) or hasattr(value, "items"):
        out = {}
        for key, item in value.items():
            out.update(flatten_params(f"{prefix}.{key}" if prefix else str(key), item))
        return out
    if hasattr(value, "model_dump"):  # a pydantic section of params.yaml
        return flatten_params(prefix, {k: getattr(value, k) for k in type(value).model_fields})
    if hasattr(value, "__dataclass_fields__"):
        return flatten_params(prefix, {k: getattr(value, k) for k in value.__dataclass_fields__})
    return {prefix: value}
