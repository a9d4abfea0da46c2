"""What the registry says about a use case, for people and benchmarks (built on the registry module)."""

from __future__ import annotations

from typing import Any

from components.config import Settings
from components.release.registry import get_alias_version, list_versions


def describe_use_case(settings: Settings, use_case: str, champion_alias: str) -> dict[str, Any]:
    """The newest version of a use case and its champion, as the registry records them."""
    versions = list_versions(settings, use_case)
    champion = get_alias_version(settings, use_case, champion_alias)
    if not versions:
        return {"use_case": use_case, "version": None, "champion_version": None}
    latest = versions[-1]
    tags = latest.tags
    return {
        "use_case": use_case,
        "version": str(latest.version),
        "data_md5": tags.get("data_md5"),
        "metrics": {k[7:]: float(v) for k, v in tags.items() if k.startswith("metric.")},
        "baseline_name": tags.get("baseline.name"),
        "baseline": {k[9:]: float(v) for k, v in tags.items() if k.startswith("baseline.") and k != "baseline.name"},
        "gate": tags.get("gate.verdict", "not gated"),
        # the model against its same-run peer: significantly better | tied | significantly worse
        "vs_peer": tags.get("eval.vs_peer"),
        "champion_version": str(champion.version) if champion else None,
    }
