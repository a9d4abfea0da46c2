"""Release review report (self-contained HTML + Markdown) and model card for a registered version.

Everything here is pure rendering of facts gathered by the flow: the evaluation (challenger,
champion and baseline on one test split, slices, plots, bootstrap intervals), the gate's checks,
the data (md5, rows, GX result, PSI against the champion's snapshot), the training-config diff
and the lineage. MLflow writes no model cards (mlflow#3613); funnel writes one per version.
"""

from __future__ import annotations

import base64
import html
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    published = facts.use_case.published
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
    """The evaluation in the shop's words (rows contacted, positives captured, items shown)."""
    ev, terms = facts.evaluation, facts.use_case.business_terms
    champion = ev.champion_metrics or {}
    things, wins = terms.get("rows", "rows"), terms.get("positives", "positives")
    sentences = []
    for name, value in ev.metrics.items():
        if name.startswith("capture_top_") and name.endswith("pct"):
            share = name.removeprefix("capture_top_").removesuffix("pct")
            text = f"Contacting the top {share}% of {things} by score captures {value:.0%} of {wins}"
            text += f", vs {champion[name]:.0%} with the champion (v{ev.champion_version})" if name in champion else ""
            text += f" and {ev.baseline_metrics[name]:.0%} with the baseline." if name in ev.baseline_metrics else "."
            sentences.append(text)
    if "accuracy" in ev.metrics and facts.use_case.task == "multiclass":
        text = f"{ev.metrics['accuracy']:.1%} of {things} are routed to the right {wins}"
        text += f", vs {champion['accuracy']:.1%} with the champion." if "accuracy" in champion else "."
        sentences.append(text)
    for name, value in ev.metrics.items():
        if name.startswith("precision_at_"):
            k = name.removeprefix("precision_at_")
            text = f"Of the {k} {things} shown to a customer, {value * float(k):.1f} are ones they went on to {wins}"
            text += f", vs {champion[name] * float(k):.1f} with the champion" if name in champion else ""
            text += f" and {ev.baseline_metrics[name] * float(k):.1f} with the baseline ({ev.baseline_name})."
            sentences.append(text)
    return sentences or [f"{facts.use_case.title}: see the metrics above."]


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


# --- Markdown --------------------------------------------------------------------------------

def _md_table(headers: tuple[str, ...], rows: list[list[str]]) -> str:
    if not rows:
        return "_none_\n"
    cell = lambda x: str(x).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(x) for x in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def summary_lines(facts: ReviewFacts) -> list[str]:
    ev, gate = facts.evaluation, facts.config.params.gate
    primary = gate.primary_metric
    champion = ev.champion_metrics or {}
    lines = [
        f"{facts.use_case.name} v{facts.version} ({facts.use_case.title})",
        f"gate verdict: {facts.decision.verdict.upper()} (promotion mode: {gate.promotion_mode})",
        f"{primary}: challenger {_num(ev.metrics.get(primary))}, "
        + (f"champion v{ev.champion_version} {_num(champion.get(primary))}" if ev.champion_version else "no champion yet")
        + f", baseline {_num(ev.baseline_metrics.get(primary))}",
        f"test rows: {ev.test_rows}; MLflow run {facts.run_id}",
    ]
    if ev.champion_error:
        lines.append(f"champion could not be scored: {ev.champion_error}")
    return lines


def render_markdown(facts: ReviewFacts) -> str:
    headers, rows = slice_rows(facts)
    parts = [f"# Release review: {facts.use_case.name} v{facts.version}\n"]
    parts += ["## Summary\n", "\n".join(f"- {line}" for line in summary_lines(facts)) + "\n"]
    parts += ["## Challenger vs champion vs baseline\n", _md_table(METRIC_HEADERS, metric_rows(facts))]
    parts += ["## Gate checks\n", _md_table(("check", "result", "numbers"), gate_rows(facts))]
    parts += ["## Slices\n", _md_table(headers, rows)]
    parts += ["## Business impact\n", "\n".join(f"- {s}" for s in business_sentences(facts)) + "\n"]
    parts += ["## Plots\n", "\n".join(f"- `{p.name}` (in the HTML report and the run's `plots/`)" for p in facts.evaluation.plots) + "\n"]
    parts += ["## Data\n", _md_table(("", "challenger", "champion"), data_rows(facts))]
    parts += ["### Feature shift (PSI, champion's snapshot → challenger's)\n",
              (facts.shift_note + "\n\n" if facts.shift_note else "") + _md_table(("column", "kind", "PSI", "reading"), shift_rows(facts))]
    parts += ["## Training configuration diff\n",
              _md_table(("parameter", "champion", "challenger"), [list(r) for r in facts.config_diff])
              if facts.config_diff else "_identical to the champion's (or no champion)_\n"]
    parts += ["## Lineage\n", _md_table(("", ""), lineage_rows(facts))]
    return "\n".join(parts)


# --- HTML ------------------------------------------------------------------------------------

STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;font-size:14px}
th{background:#f3f3f3}.pass{color:#176617}.fail{color:#b00020;font-weight:bold}
.verdict{font-size:20px;padding:8px 12px;display:inline-block;border-radius:6px}
.passed{background:#e3f5e3}.failed{background:#fde7ea}figure{display:inline-block;margin:8px}
img{max-width:520px;border:1px solid #eee}section{margin-bottom:2em}
"""


def _html_table(headers: tuple[str, ...], rows: list[list[str]]) -> str:
    if not rows:
        return "<p><em>none</em></p>"
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)

    def cell(x: str) -> str:
        css = ' class="pass"' if x == "pass" or x.startswith("pass ") else (' class="fail"' if x.startswith("FAIL") else "")
        return f"<td{css}>{html.escape(str(x))}</td>"

    body = "".join("<tr>" + "".join(cell(str(x)) for x in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _image(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure><img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(path.name)}</figcaption></figure>")


def render_html(facts: ReviewFacts) -> str:
    """One self-contained page (plots embedded), one ``<section id=...>`` per part."""
    verdict = facts.decision.verdict
    headers, rows = slice_rows(facts)
    gains = [p for p in facts.evaluation.plots if p.stem == "gains"]
    body = {
        "summary": f'<p class="verdict {verdict}">Gate {verdict.upper()}</p><ul>'
                   + "".join(f"<li>{html.escape(line)}</li>" for line in summary_lines(facts)) + "</ul>",
        "metrics": _html_table(METRIC_HEADERS, metric_rows(facts)),
        "gate": _html_table(("check", "result", "numbers"), gate_rows(facts)),
        "slices": _html_table(headers, rows),
        "business": "<ul>" + "".join(f"<li>{html.escape(s)}</li>" for s in business_sentences(facts)) + "</ul>"
                    + "".join(_image(p) for p in gains),
        "plots": "".join(_image(p) for p in facts.evaluation.plots if p.stem != "gains"),
        "data": _html_table(("", "challenger", "champion"), data_rows(facts))
                + "<h3>Feature shift (PSI, champion's snapshot → challenger's)</h3>"
                + (f"<p>{html.escape(facts.shift_note)}</p>" if facts.shift_note else "")
                + _html_table(("column", "kind", "PSI", "reading"), shift_rows(facts))
                + (f"<p>label {html.escape(str(facts.label_shift.get('label')))}: champion's data "
                   f"{html.escape(str(facts.label_shift.get('reference')))} → challenger's "
                   f"{html.escape(str(facts.label_shift.get('current')))} (PSI {facts.label_shift.get('psi', 0):.4f})</p>"
                   if facts.label_shift else ""),
        "config": _html_table(("parameter", "champion", "challenger"), [list(r) for r in facts.config_diff])
                  if facts.config_diff else "<p>Identical to the champion's training configuration (or no champion yet).</p>",
        "lineage": _html_table(("", ""), lineage_rows(facts)),
    }
    sections = "".join(
        f'<section id="{key}"><h2>{SECTION_TITLES[key]}</h2>{body[key]}</section>' for key in SECTIONS
    )
    title = f"Release review: {facts.use_case.name} v{facts.version}"
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>{sections}</body></html>")


# --- Model card ------------------------------------------------------------------------------

def render_model_card(facts: ReviewFacts) -> str:
    """Markdown model card: intended use, data, metrics with 95% CIs, slices, limitations, lineage."""
    uc, ev = facts.use_case, facts.evaluation
    metrics = [[n, _num(v), (f"[{ev.intervals[n][0]:.4f}, {ev.intervals[n][1]:.4f}]" if n in ev.intervals else "–"),
                _num(ev.baseline_metrics.get(n))] for n, v in ev.metrics.items() if n != "users"]
    headers, rows = slice_rows(facts)
    parts = [
        f"# Model card: {uc.name} v{facts.version}\n",
        f"## Intended use\n\n{uc.intended_use}\n",
        "## Data\n",
        _md_table(("", ""), [
            ["source", str(facts.data.get("source", "–"))], ["licence", uc.data_licence], ["citation", uc.data_citation],
            ["snapshot md5", facts.data.get("md5", "–")], ["rows", str(facts.data.get("rows", "–"))],
            ["test rows", str(ev.test_rows)],
        ]),
        f"## Metrics (test split; 95% bootstrap intervals over {facts.config.bootstrap_rounds} resamples)\n",
        _md_table(("metric", "value", "95% CI", f"baseline ({ev.baseline_name})"), metrics),
        "## Slices\n", _md_table(headers, rows),
        f"## Known limitations\n\n{uc.limitations}\n",
        "## Lineage\n", _md_table(("", ""), lineage_rows(facts)),
    ]
    return "\n".join(parts)


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

    from components.release import registry
    from components.data import versioning
    from components.monitoring.drift import feature_shift, label_shift

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
            reference = versioning.read_cached_snapshot(settings.repo_root, champion["data_md5"], settings.dvc_remote)
            if reference is None:
                note = f"the champion's snapshot {champion['data_md5']} is not in the DVC cache or remote; PSI not computed"
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
