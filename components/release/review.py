"""Release review report (self-contained HTML + Markdown) and model card for a registered version.

Everything here is pure rendering of facts gathered by the flow: the evaluation (challenger,
champion and baseline on one test split, slices, plots, bootstrap intervals), the gate's checks,
the data (md5, rows, GX result, PSI against the champion's snapshot), the training-config diff
and the lineage. MLflow writes no model cards (mlflow#3613); funnel writes one per version.

Python turns the facts into rows (``metric_rows``, ``gate_rows``, ...); the layout is in the Jinja2
templates under ``components/release/templates/``: ``review.html.j2`` (autoescaped),
``review.md.j2`` and ``model_card.md.j2`` (Markdown, tables from ``_tables.md.j2``).
"""

from __future__ import annotations

import base64
import functools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

from components.release.promotion import slice_check_name

SECTIONS = ("summary", "metrics", "gate", "slices", "business", "plots", "data", "config", "lineage")
SECTION_TITLES = {
    "summary": "Summary", "metrics": "Challenger vs champion vs baseline", "gate": "Gate checks",
    "slices": "Slices", "business": "Business impact", "plots": "Plots", "data": "Data",
    "config": "Training configuration diff", "lineage": "Lineage",
}


@dataclass(frozen=True)
class ReviewFacts:
    """What a reviewer needs to decide, gathered by the flow."""

    use_case: Any
    config: Any
    version: str
    run_id: str
    evaluation: Any
    decision: Any
    data: dict[str, Any]
    validation: dict[str, Any]
    champion: dict[str, Any] | None
    shift: list[dict] = field(default_factory=list)
    label_shift: dict = field(default_factory=dict)
    shift_note: str = ""
    config_diff: list[tuple[str, str, str]] = field(default_factory=list)
    lineage: dict[str, str] = field(default_factory=dict)


def _num(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _delta(a: Any, b: Any) -> str:
    if a is None or b is None or not all(isinstance(x, int | float) and math.isfinite(x) for x in (a, b)):
        return "–"
    return f"{a - b:+.4f}"


def metric_rows(facts: ReviewFacts) -> list[list[str]]:
    ev = facts.evaluation
    champion = ev.champion_metrics or {}
    published = facts.use_case.card.published
    names = [n for n in ev.metrics if n != "users"]
    rows = []
    for name in names:
        value = ev.metrics[name]
        interval = ev.intervals.get(name)
        shown = _num(value) + (f" [{interval[0]:.4f}, {interval[1]:.4f}]" if interval else "")
        rows.append([
            name, shown, _num(champion.get(name)), _delta(value, champion.get(name)),
            _num(ev.baseline_metrics.get(name)), _delta(value, ev.baseline_metrics.get(name)),
            _num(published.get(name), 3) if name in published else "–",
        ])
    return rows


METRIC_HEADERS = ("metric", "challenger [95% CI]", "champion", "Δ champion", "baseline", "Δ baseline", "published")


def gate_rows(facts: ReviewFacts) -> list[list[str]]:
    return [[c.name, "pass" if c.passed else "FAIL", c.detail] for c in facts.decision.checks]


def slice_rows(facts: ReviewFacts) -> tuple[tuple[str, ...], list[list[str]]]:
    slices = facts.evaluation.slices
    if not slices:
        return ("slice",), []
    metrics = [k for k in slices[0] if k not in ("slice", "value", "rows")]
    gate = facts.config.params.gate
    checks = {c.name: c for c in facts.decision.checks if c.name.startswith("slice.")}
    rows = []
    for s in slices:
        verdicts = []
        for metric, floor in gate.slice_floors.items():
            check = checks.get(slice_check_name(s["slice"], s["value"], metric))
            if check is not None:
                verdicts.append(f"{'pass' if check.passed else 'FAIL'} {metric} ≥ {floor:g}")
            elif metric in s:
                verdicts.append(f"not gated (< {gate.min_slice_rows} rows or undefined)")
        rows.append([s["slice"], s["value"], str(s["rows"]), *(_num(s.get(m)) for m in metrics), "; ".join(verdicts) or "–"])
    return ("slice", "value", "rows", *metrics, "slice gate"), rows


def business_sentences(facts: ReviewFacts) -> list[str]:
    """The evaluation in the shop's words, as the use case's task kind phrases it."""
    sentences = facts.use_case.task.business_sentences(facts.evaluation, facts.use_case.card.business_terms)
    return sentences or [f"{facts.use_case.card.title}: see the metrics above."]


def data_rows(facts: ReviewFacts) -> list[list[str]]:
    champion = facts.champion or {}
    v = facts.validation
    return [
        ["snapshot md5", facts.data.get("md5", "–"), champion.get("data_md5", "–")],
        ["rows", str(facts.data.get("rows", "–")), str(champion.get("rows", "–"))],
        ["source", str(facts.data.get("source", "–")), str(champion.get("source", "–"))],
        ["GX validation", f"{'passed' if v.get('success') else 'FAILED'}: {v.get('passed', '–')}/{v.get('evaluated', '–')} expectations",
         champion.get("validation", "–")],
    ]


def shift_rows(facts: ReviewFacts) -> list[list[str]]:
    return [[r["column"], r["kind"], f"{r['psi']:.4f}", r["level"]] for r in facts.shift]


def lineage_rows(facts: ReviewFacts) -> list[list[str]]:
    return [[k, v] for k, v in facts.lineage.items()]


def summary_lines(facts: ReviewFacts) -> list[str]:
    ev, gate = facts.evaluation, facts.config.params.gate
    primary = gate.primary_metric
    champion = ev.champion_metrics or {}
    lines = [
        f"{facts.use_case.name} v{facts.version} ({facts.use_case.card.title})",
        f"gate verdict: {facts.decision.verdict.upper()} (promotion mode: {gate.promotion_mode})",
        f"{primary}: challenger {_num(ev.metrics.get(primary))}, "
        + (f"champion v{ev.champion_version} {_num(champion.get(primary))}" if ev.champion_version else "no champion yet")
        + f", baseline {_num(ev.baseline_metrics.get(primary))}",
        f"test rows: {ev.test_rows}; MLflow run {facts.run_id}",
    ]
    if ev.champion_error:
        lines.append(f"champion could not be scored: {ev.champion_error}")
    return lines + comparison_lines(facts)


def comparison_lines(facts: ReviewFacts) -> list[str]:
    """The paired comparisons in words: is the deep model better than its same-run peer, and than
    the champion on the test rows the champion never trained on?"""
    ev = facts.evaluation
    lines = []
    if ev.baseline_comparison is not None:
        lines.append(f"against its same-run peer, the model is {ev.baseline_comparison.phrase(ev.baseline_name)}: "
                     f"{ev.baseline_comparison.describe()}")
    if ev.champion_version is not None:
        where = "rows it never trained on" if ev.champion_rows_seen == 0 else "rows (unknown which it trained on)"
        if ev.champion_comparison is not None:
            lines.append(f"on {ev.champion_comparison.rows} test {where} ({ev.champion_rows_excluded} left out), the "
                         f"challenger is {ev.champion_comparison.phrase(f'champion v{ev.champion_version}')}: "
                         f"{ev.champion_comparison.describe()}")
        else:
            lines.append(f"no paired comparison with champion v{ev.champion_version}: {ev.champion_error or ev.champion_note}")
    return lines


def card_data_rows(facts: ReviewFacts) -> list[list[str]]:
    """The model card's data table: where the data comes from and how much of it there is."""
    uc = facts.use_case
    return [
        ["source", str(facts.data.get("source", "–"))], ["licence", uc.card.licence], ["citation", uc.card.citation],
        ["snapshot md5", facts.data.get("md5", "–")], ["rows", str(facts.data.get("rows", "–"))],
        ["test rows", str(facts.evaluation.test_rows)],
    ]


def card_metric_rows(facts: ReviewFacts) -> list[list[str]]:
    """The model card's metrics: value, 95% bootstrap interval and the baseline's value."""
    ev = facts.evaluation
    return [[n, _num(v), (f"[{ev.intervals[n][0]:.4f}, {ev.intervals[n][1]:.4f}]" if n in ev.intervals else "–"),
             _num(ev.baseline_metrics.get(n))] for n, v in ev.metrics.items() if n != "users"]


def plot_figures(facts: ReviewFacts) -> list[dict[str, str]]:
    """The evaluation's plots as base64 PNGs, for embedding in the HTML page."""
    return [{"stem": p.stem, "name": p.name, "png": base64.b64encode(p.read_bytes()).decode("ascii")}
            for p in facts.evaluation.plots]


# --- Templates (components/release/templates/*.j2) ------------------------------------------

def _md_cell(value: Any) -> str:
    """A Markdown table cell: ``|`` escaped, newlines flattened (Markdown is never HTML-escaped)."""
    return str(value).replace("|", "\\|").replace("\n", " ")


@functools.cache
def template_environment() -> jinja2.Environment:
    """The templates' environment, built on first use: ``*.html.j2`` autoescaped, Markdown not;
    an undefined variable raises instead of rendering blank."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("components.release", "templates"),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["md_cell"] = _md_cell
    return env


def template_context(facts: ReviewFacts) -> dict[str, Any]:
    """The rows every template draws from; the layout (headers, headings, markup) is the templates'."""
    slice_headers, slices = slice_rows(facts)
    return {
        "facts": facts, "titles": SECTION_TITLES, "summary": summary_lines(facts),
        "metric_headers": METRIC_HEADERS, "metric_rows": metric_rows(facts), "gate_rows": gate_rows(facts),
        "slice_headers": slice_headers, "slice_rows": slices, "business": business_sentences(facts),
        "data_rows": data_rows(facts), "shift_rows": shift_rows(facts), "lineage_rows": lineage_rows(facts),
        "comparisons": comparison_lines(facts),
    }


def render_markdown(facts: ReviewFacts) -> str:
    return template_environment().get_template("review.md.j2").render(template_context(facts))


def render_html(facts: ReviewFacts) -> str:
    """One self-contained page (plots embedded), one ``<section id=...>`` per part."""
    return template_environment().get_template("review.html.j2").render(template_context(facts), plots=plot_figures(facts))


def render_model_card(facts: ReviewFacts) -> str:
    """Markdown model card: intended use, data, metrics with 95% CIs, slices, limitations, lineage."""
    context = template_context(facts) | {"card_data_rows": card_data_rows(facts), "card_metric_rows": card_metric_rows(facts)}
    return template_environment().get_template("model_card.md.j2").render(context)


def write_review(facts: ReviewFacts, folder: Path) -> dict[str, Path]:
    """Write ``review-v<version>.html``, ``review-v<version>.md`` and ``model-card-v<version>.md``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "html": folder / f"review-v{facts.version}.html",
        "markdown": folder / f"review-v{facts.version}.md",
        "model_card": folder / f"model-card-v{facts.version}.md",
    }
    paths["html"].write_text(render_html(facts), encoding="utf-8")
    paths["markdown"].write_text(render_markdown(facts), encoding="utf-8")
    paths["model_card"].write_text(render_model_card(facts), encoding="utf-8")
    return paths


def collect_facts(
    settings, use_case, config, registered, evaluation, decision, snapshot, data_version, validation, context: dict[str, str],
) -> ReviewFacts:
    """Gather the review's facts: the champion's data (from the DVC cache or remote) for PSI, the
    champion's training params for the config diff, and the lineage."""
    import json

    from components.data import versioning
    from components.errors import VersioningError
    from components.monitoring.drift import feature_shift, label_shift
    from components.release import registry

    champion = None
    shift, labels, note, diff = [], {}, "", []
    challenger_params = registry.run_params(settings, registered.run_id)
    if evaluation.champion_version:
        found = registry.get_version(settings, config.name, evaluation.champion_version)
        run = registry.get_run(settings, found.run_id) if found is not None else None
        if found is not None and run is not None:
            stats = json.loads(run.data.tags.get("validation", "{}") or "{}")
            champion = {
                "version": evaluation.champion_version, "data_md5": found.tags.get("data_md5", "–"),
                "rows": run.data.tags.get("data_rows", "–"), "source": run.data.tags.get("data_source", "–"),
                "validation": f"{stats.get('passed', '–')}/{stats.get('evaluated', '–')} expectations passed",
            }
            try:
                reference = versioning.read_cached_snapshot(settings.repo_root, champion["data_md5"], settings.dvc_remote)
            except VersioningError as exc:  # the remote would not answer: the review says so, PSI is skipped
                reference, note = None, f"{exc}; PSI not computed"
            if reference is None:
                note = note or f"the champion's snapshot {champion['data_md5']} is not in the DVC cache or remote; PSI not computed"
            else:
                columns = [c for c in config.params.validate.columns if c != config.label]
                shift = feature_shift(reference, snapshot.frame, columns)
                labels = label_shift(reference, snapshot.frame, config.label)
                if champion["data_md5"] == data_version.md5:
                    note = "same snapshot as the champion's: no shift by construction"
            champion_params = registry.run_params(settings, found.run_id)
            diff = [(k, champion_params.get(k, "–"), challenger_params.get(k, "–"))
                    for k in sorted(set(champion_params) | set(challenger_params))
                    if champion_params.get(k) != challenger_params.get(k)]
    else:
        note = "no champion yet: nothing to compare with"
    stats = validation.statistics
    return ReviewFacts(
        use_case=use_case, config=config, version=registered.version, run_id=registered.run_id,
        evaluation=evaluation, decision=decision,
        data={"md5": data_version.md5, "rows": snapshot.rows, "source": snapshot.source},
        validation={"success": validation.success, **stats},
        champion=champion, shift=shift, label_shift=labels, shift_note=note, config_diff=diff,
        lineage={
            "data md5 (DVC)": f"{data_version.md5} ({data_version.path}, stage {data_version.stage}, remote {data_version.remote})",
            "git commit": context.get("git_commit", "unknown"),
            "Prefect flow run": context.get("flow_run_id", "") or "–",
            "MLflow run": registered.run_id,
            "GX result": f"{stats['passed']}/{stats['evaluated']} expectations passed; Data Docs {validation.docs_path}",
            "champion when evaluated": f"v{evaluation.champion_version}" if evaluation.champion_version else "none",
        },
    )
