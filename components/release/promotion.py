"""The promotion gate: ``decide_promotion`` is pure; ``apply_promotion`` writes the aliases."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from components.config import GateParams
from components.errors import GateFailedError
from components.evaluation.compare import PairedComparison
from components.locks import DEFAULT_TIMEOUT_S


@dataclass(frozen=True)
class Check:
    """One gate check with the numbers it compared."""

    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class PromotionDecision:
    use_case: str
    version: str
    promote: bool
    checks: tuple[Check, ...]
    champion_version: str | None
    # the champion cannot score the new data: the gate's decision needs a reviewer's approval
    # (``gate.on_schema_change: review``), or stands on floors and baseline (``floors``)
    schema_change: str | None = None
    needs_review: bool = False

    @property
    def action(self) -> str:
        """What the ledger records when this decision moves @champion."""
        return "promote (schema change)" if self.schema_change else "promote"

    @property
    def failed_checks(self) -> list[str]:
        return [f"{c.name}: {c.detail}" for c in self.checks if not c.passed]

    @property
    def verdict(self) -> str:
        return "passed" if self.promote else "failed"

    def as_tags(self) -> dict[str, str]:
        """Version tags: the verdict and each check with its numbers."""
        tags = {"gate.verdict": self.verdict}
        if self.schema_change:
            tags["gate.schema_change"] = self.schema_change
        for check in self.checks:
            tags[f"gate.{check.name}"] = f"{'pass' if check.passed else 'FAIL'}: {check.detail}"
        return tags


def _finite(value: float | None) -> float | None:
    """``value`` when it is a number; None when it is missing or NaN (so ``is None`` narrows it)."""
    return None if value is None or math.isnan(value) else value


def check_floors(metrics: Mapping[str, float], floors: Mapping[str, float]) -> list[Check]:
    """Every metric must reach its absolute floor."""
    checks = []
    for metric, floor in floors.items():
        value = _finite(metrics.get(metric))
        if value is None:
            checks.append(Check(f"floor.{metric}", False, f"{metric} is missing or NaN (floor {floor:.4f})"))
            continue
        passed = value >= floor
        checks.append(Check(f"floor.{metric}", passed, f"{metric} {value:.4f} {'>=' if passed else '<'} {floor:.4f}"))
    return checks


def slice_check_name(column: str, value: str, metric: str) -> str:
    """A check name that is also a valid MLflow tag key (``slice.Month:Nov.roc_auc``)."""
    clean = re.sub(r"[^0-9A-Za-z_\-. /]", "_", str(value))
    return f"slice.{column}:{clean}.{metric}"


def check_slices(slices: list[dict], floors: Mapping[str, float], min_rows: int) -> list[Check]:
    """Each slice with at least ``min_rows`` rows must reach the per-slice floors; smaller slices
    and slices where a metric is undefined (e.g. one class only) are reported, not gated."""
    checks = []
    for row in slices:
        if row.get("rows", 0) < min_rows:
            continue
        for metric, floor in floors.items():
            value = _finite(row.get(metric))
            if value is None:
                continue
            passed = value >= floor
            checks.append(Check(
                slice_check_name(row["slice"], row["value"], metric), passed,
                f"{metric} {value:.4f} {'>=' if passed else '<'} {floor:.4f} on {row['rows']} rows",
            ))
    return checks


def check_champion(
    metrics: Mapping[str, float],
    gate: GateParams,
    champion_version: str | None,
    champion_metrics: Mapping[str, float] | None,
    champion_error: str | None = None,
    comparison: PairedComparison | None = None,
) -> Check:
    """The challenger must beat the champion on the primary metric, on the same test rows the
    champion never trained on. ``paired``: the lower bound of the 95% interval of
    (challenger - champion) must exceed ``min_delta``; ``point``: challenger >= champion + min_delta."""
    metric = gate.primary_metric
    if champion_version is None:
        return Check("beats_champion", True, "no champion yet: the first version that passes its floors becomes champion")
    if comparison is None and (champion_metrics is None or _finite(champion_metrics.get(metric)) is None):
        reason = champion_error or f"champion v{champion_version} has no {metric} on this test split"
        return Check("beats_champion", False, f"{reason}; promote by hand only after a review")
    if gate.compare == "point":
        challenger = _finite(comparison.a if comparison else metrics.get(metric))
        champion = _finite(comparison.b if comparison else (champion_metrics or {}).get(metric))
        if challenger is None or champion is None:
            return Check("beats_champion", False, f"challenger or champion has no {metric}")
        passed = challenger >= champion + gate.min_delta
        return Check("beats_champion", passed,
                     f"{metric} {challenger:.4f} {'>=' if passed else '<'} champion v{champion_version} "
                     f"{champion:.4f} + min_delta {gate.min_delta:.4f}")
    if comparison is None:
        reason = champion_error or f"no paired comparison with champion v{champion_version}"
        return Check("beats_champion", False, f"{reason}; promote by hand only after a review")
    if _finite(comparison.low) is None:
        return Check("beats_champion", False,
                     f"the paired interval vs champion v{champion_version} is undefined ({comparison.rows} rows); review by hand")
    passed = comparison.low > gate.min_delta
    return Check("beats_champion", passed,
                 f"vs champion v{champion_version}: {comparison.describe()}; lower bound "
                 f"{'>' if passed else '<='} min_delta {gate.min_delta:.4f}")


def check_schema_change(gate: GateParams, schema_change: str) -> Check:
    """The champion cannot score the new data, so it cannot be beaten on it: the decision follows
    ``gate.on_schema_change`` (never a silent pass, never a dead end)."""
    if gate.on_schema_change == "floors":
        return Check("beats_champion", True, f"{schema_change}; on_schema_change: floors — promoted on the floors "
                                             "and the baseline check")
    return Check("beats_champion", True, f"{schema_change}; on_schema_change: review — a reviewer approves or "
                                         "rejects with the floors and the baseline check in front of them")


def check_baseline(gate: GateParams, comparison: PairedComparison | None, baseline_name: str = "baseline") -> Check:
    """The model against its same-run peer (paired, all test rows): ``non_inferior`` — not clearly
    worse (lower bound > -baseline_margin); ``superior`` — clearly better (lower bound > 0);
    ``advisory`` — reported, never blocking."""
    if comparison is None or _finite(comparison.low) is None:
        detail = f"no paired comparison with {baseline_name}"
        return Check("beats_baseline", gate.baseline_policy == "advisory", f"{detail} (policy {gate.baseline_policy})")
    summary = f"the model is {comparison.phrase(baseline_name)}: {comparison.describe()}"
    if gate.baseline_policy == "advisory":
        return Check("beats_baseline", True, f"{summary} (advisory)")
    bound = -gate.baseline_margin if gate.baseline_policy == "non_inferior" else 0.0
    passed = comparison.low > bound
    return Check("beats_baseline", passed,
                 f"{summary}; lower bound {'>' if passed else '<='} {bound:+.4f} (policy {gate.baseline_policy})")


def check_slice_regression(
    slices: list[dict], champion_slices: list[dict], gate: GateParams, champion_version: str | None,
) -> list[Check]:
    """No gated slice (at least ``min_slice_rows`` rows) may fall more than ``max_slice_drop``
    below the champion's value on the same slice, for the metrics ``slice_floors`` names."""
    theirs = {(row["slice"], row["value"]): row for row in champion_slices}
    checks = []
    for row in slices:
        other = theirs.get((row["slice"], row["value"]))
        if other is None or row.get("rows", 0) < gate.min_slice_rows:
            continue
        for metric in gate.slice_floors:
            mine, champion = _finite(row.get(metric)), _finite(other.get(metric))
            if mine is None or champion is None:
                continue
            passed = mine >= champion - gate.max_slice_drop
            name = slice_check_name(row["slice"], row["value"], metric).replace("slice.", "slice_vs_champion.", 1)
            checks.append(Check(name, passed, f"{metric} {mine:.4f} {'>=' if passed else '<'} champion v{champion_version} "
                                               f"{champion:.4f} - max_slice_drop {gate.max_slice_drop:.4f} on {row['rows']} rows"))
    return checks


def decide_promotion(
    use_case: str,
    version: str,
    metrics: Mapping[str, float],
    gate: GateParams,
    champion_version: str | None,
    champion_metrics: Mapping[str, float] | None,
    champion_error: str | None = None,
    slices: list[dict] | None = None,
    *,
    champion_comparison: PairedComparison | None = None,
    baseline_comparison: PairedComparison | None = None,
    baseline_name: str = "baseline",
    champion_slices: list[dict] | None = None,
    schema_change: str | None = None,
) -> PromotionDecision:
    """Promote only when every floor (overall and per slice) holds, the model is not worse than
    its same-run peer, no slice regresses against the champion, and the champion is beaten on
    the same test rows it never trained on."""
    checks = (
        *check_floors(metrics, gate.floors),
        *check_slices(slices or [], gate.slice_floors, gate.min_slice_rows),
        check_baseline(gate, baseline_comparison, baseline_name),
        *check_slice_regression(slices or [], champion_slices or [], gate, champion_version),
        check_schema_change(gate, schema_change) if schema_change and champion_version else
        check_champion(metrics, gate, champion_version, champion_metrics, champion_error, champion_comparison),
    )
    changed = bool(schema_change and champion_version)
    return PromotionDecision(
        use_case=use_case,
        version=version,
        promote=all(c.passed for c in checks),
        checks=checks,
        champion_version=champion_version,
        schema_change=schema_change if changed else None,
        needs_review=changed and gate.on_schema_change == "review",
    )


def apply_promotion(
    decision: PromotionDecision, settings, champion_alias: str, *, action: str | None = None,
    actor: str = "gate (auto)", reason: str | None = None, flow_run_id: str = "", lock_timeout_s: float = DEFAULT_TIMEOUT_S,
) -> str:
    """Write the gate's tags; move ``@champion`` when it passed, else raise GateFailedError.

    The move is recorded in the promotion ledger and refused (PromotionConflictError) when the
    champion is no longer the one the challenger was compared with. Returns the champion version.
    """
    from components.release import registry
    from components.release.ledger import move_alias

    registry.write_version_tags(settings, decision.use_case, decision.version, decision.as_tags())
    if not decision.promote:
        raise GateFailedError(decision.use_case, decision.version, decision.failed_checks)
    summary = "; ".join(f"{c.name}: {c.detail}" for c in decision.checks)
    move_alias(
        settings, decision.use_case, champion_alias, decision.version,
        expected_from=decision.champion_version, require_expected=True, action=action or decision.action,
        actor=actor, reason=reason or f"gate passed: {summary}", gate=f"{decision.verdict}: {summary}",
        flow_run_id=flow_run_id, lock_timeout_s=lock_timeout_s,
    )
    return decision.version
