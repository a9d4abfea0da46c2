"""Release review and model card rendered from the Jinja2 templates, on hand-built facts (no MLflow)."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace

import jinja2
import pytest
from bs4 import BeautifulSoup

from components.release import review
from components.release.promotion import Check, PromotionDecision, slice_check_name
from components.release.review import SECTION_TITLES, SECTIONS, ReviewFacts
from components.tasks import BINARY

# a 1x1 PNG: the plots are embedded as they are, the renderer never decodes them
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
SCRIPT = "<script>alert('x')</script>"


@dataclass(frozen=True)
class Card:
    """What the renderers read of a use case's card (CardParams)."""

    title: str = f"Purchase intent {SCRIPT}"
    published: dict = field(default_factory=lambda: {"roc_auc": 0.93})
    business_terms: dict = field(default_factory=lambda: {"rows": "sessions", "positives": "purchases"})
    intended_use: str = "Rank sessions by purchase propensity."
    limitations: str = f"One shop, one year. {SCRIPT} | not a table"
    licence: str = "CC BY 4.0"
    citation: str = "Sakar et al. (2019) | UCI"


@dataclass(frozen=True)
class UseCase:
    """What the renderers read of a UseCase."""

    name: str = "intent"
    task: object = BINARY
    card: Card = field(default_factory=Card)


@dataclass(frozen=True)
class Evaluation:
    """What the renderers read of an Evaluation."""

    plots: list[Path]
    metrics: dict = field(default_factory=lambda: {
        "roc_auc": 0.91, "pr_auc": 0.62, "capture_top_10pct": 0.45, "users": 3.0})
    intervals: dict = field(default_factory=lambda: {"roc_auc": (0.89, 0.93)})
    baseline_name: str = "gradient boosting"
    baseline_metrics: dict = field(default_factory=lambda: {"roc_auc": 0.88, "pr_auc": 0.58, "capture_top_10pct": 0.4})
    champion_version: str | None = "1"
    champion_metrics: dict | None = field(default_factory=lambda: {"roc_auc": 0.9, "pr_auc": 0.6, "capture_top_10pct": 0.44})
    champion_error: str | None = None
    slices: list[dict] = field(default_factory=lambda: [
        {"slice": "Month", "value": "Nov", "rows": 400, "roc_auc": 0.9, "pr_auc": 0.7},
        {"slice": "Month", "value": "Feb|Mar", "rows": 300, "roc_auc": 0.6, "pr_auc": 0.3},
        {"slice": "VisitorType", "value": "Other", "rows": 12, "roc_auc": float("nan"), "pr_auc": 0.5},
    ])
    test_rows: int = 2466
    baseline_comparison: object = None
    champion_comparison: object = None
    champion_rows_seen: int | None = 0
    champion_rows_excluded: int = 0
    champion_note: str = ""


def _config() -> SimpleNamespace:
    gate = SimpleNamespace(primary_metric="roc_auc", promotion_mode="review", slice_floors={"roc_auc": 0.7},
                           min_slice_rows=50)
    return SimpleNamespace(params=SimpleNamespace(gate=gate), bootstrap_rounds=200)


def _decision() -> PromotionDecision:
    checks = (
        Check("floor.roc_auc", True, "roc_auc 0.9100 >= 0.7500"),
        Check("champion.roc_auc", False, "roc_auc 0.9100 - 0.9000 < 0.0200"),
        Check(slice_check_name("Month", "Nov", "roc_auc"), True, "roc_auc 0.9000 >= 0.7000 on 400 rows"),
        Check(slice_check_name("Month", "Feb|Mar", "roc_auc"), False, "roc_auc 0.6000 < 0.7000 on 300 rows"),
    )
    return PromotionDecision("intent", "2", promote=False, checks=checks, champion_version="1")


def make_facts(folder: Path, **changes) -> ReviewFacts:
    plots = []
    for stem in ("gains", "roc", "pr", "calibration"):
        plots.append(folder / f"{stem}.png")
        plots[-1].write_bytes(PNG)
    facts = ReviewFacts(
        use_case=UseCase(), config=_config(), version="2", run_id="abc123", evaluation=Evaluation(plots=plots),
        decision=_decision(),
        data={"md5": "d41d8cd9", "rows": 12330, "source": "data/intent/online_shoppers_intention.csv"},
        validation={"success": True, "passed": 14, "evaluated": 14},
        champion={"version": "1", "data_md5": "0cc175b9", "rows": "12000", "source": "data/intent/old.csv",
                  "validation": "14/14 expectations passed"},
        shift=[{"column": "PageValues", "kind": "numeric", "psi": 0.0123, "level": "stable"},
               {"column": "Month", "kind": "categorical", "psi": 0.31, "level": "shifted"}],
        label_shift={"label": "Revenue", "reference": 0.15, "current": 0.16, "psi": 0.001},
        config_diff=[("train.learning_rate", "0.001", "0.002")],
        lineage={"git commit": "e70a4b4", "MLflow run": "abc123", "note": "two\nlines | piped"},
    )
    return replace(facts, **changes)


@pytest.fixture
def facts(tmp_path) -> ReviewFacts:
    return make_facts(tmp_path)


def _soup(facts: ReviewFacts) -> BeautifulSoup:
    return BeautifulSoup(review.render_html(facts), "html.parser")


def _tables(markdown: str) -> list[list[str]]:
    """The Markdown tables: runs of consecutive lines starting with ``|``."""
    tables, current = [], []
    for line in [*markdown.splitlines(), ""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append(current)
            current = []
    return tables


def test_environment_escapes_html_only_and_is_strict():
    env = review.template_environment()
    assert env is review.template_environment()  # built once, on first use
    assert env.autoescape("review.html.j2") is True
    assert env.autoescape("review.md.j2") is False
    assert env.autoescape("model_card.md.j2") is False
    assert env.undefined is jinja2.StrictUndefined
    assert env.keep_trailing_newline
    assert set(env.list_templates()) >= {"review.html.j2", "review.md.j2", "model_card.md.j2"}


def test_html_renders_every_section_in_order_with_plots(facts):
    soup = _soup(facts)
    assert soup.title.get_text() == "Release review: intent v2" == soup.h1.get_text()
    assert [s["id"] for s in soup.find_all("section")] == list(SECTIONS)
    for key in SECTIONS:
        section = soup.find("section", id=key)
        assert section.h2.get_text() == SECTION_TITLES[key]
        assert len(section.get_text(" ", strip=True)) > len(SECTION_TITLES[key]) + 5, f"section {key} is empty"
    assert [img["alt"] for img in soup.select("#business img")] == ["gains"]
    assert [img["alt"] for img in soup.select("#plots img")] == ["roc", "pr", "calibration"]
    png = "data:image/png;base64," + base64.b64encode(PNG).decode("ascii")
    assert all(img["src"] == png for img in soup.find_all("img"))
    assert soup.select_one("#summary .verdict.failed").get_text() == "Gate FAILED"
    assert "champion v1 0.9000" in soup.select_one("#summary").get_text(" ")
    assert [th.get_text() for th in soup.select("#metrics th")] == list(review.METRIC_HEADERS)
    assert len(soup.select("#metrics tbody tr")) == 3  # "users" is not a metric row
    data = soup.select_one("#data")
    assert [len(t.select("tbody tr")) for t in data.find_all("table")] == [4, 2]  # data, then a PSI row per feature
    assert "label Revenue: champion's data 0.15 → challenger's 0.16 (PSI 0.0010)" in data.get_text(" ")
    assert soup.select_one("#config td").get_text() == "train.learning_rate"
    assert soup.select_one("#lineage").get_text(" ").count("abc123") == 1
    assert "body{font-family" in soup.style.get_text()


def test_markdown_review_and_model_card_have_every_section(facts):
    markdown = review.render_markdown(facts)
    assert markdown.startswith("# Release review: intent v2\n\n## Summary\n\n- intent v2 (")
    headings = [line[3:] for line in markdown.splitlines() if line.startswith("## ")]
    assert headings == [SECTION_TITLES[key] for key in SECTIONS]
    assert "### Feature shift (PSI, champion's snapshot → challenger's)" in markdown
    assert "| metric | challenger [95% CI] | champion | Δ champion | baseline | Δ baseline | published |\n|" + "---|" * 7 in markdown
    assert "| roc_auc | 0.9100 [0.8900, 0.9300] | 0.9000 | +0.0100 | 0.8800 | +0.0300 | 0.930 |" in markdown
    assert "- `calibration.png` (in the HTML report and the run's `plots/`)" in markdown
    assert markdown.endswith("| MLflow run | abc123 |\n| note | two lines \\| piped |\n")
    card = review.render_model_card(facts)
    headings = [line[3:] for line in card.splitlines() if line.startswith("## ")]
    assert headings == ["Intended use", "In business terms", "Data", "Metrics (test split; 95% bootstrap intervals over 200 resamples)",
                        "Compared with (paired 95% bootstrap intervals on roc_auc)", "Slices", "Known limitations",
                        "Lineage"]
    assert "| metric | value | 95% CI | baseline (gradient boosting) |" in card
    assert "| roc_auc | 0.9100 | [0.8900, 0.9300] | 0.8800 |" in card
    assert "| pr_auc | 0.6200 | – | 0.5800 |" in card
    assert "## Intended use\n\nRank sessions by purchase propensity.\n" in card
    assert card.startswith("# Model card: intent v2\n")
    assert card.endswith("piped |\n")


def test_html_escapes_markup_while_markdown_escapes_only_table_pipes(facts):
    page = review.render_html(facts)
    soup = BeautifulSoup(page, "html.parser")
    assert soup.find("script") is None
    assert "&lt;script&gt;" in page
    assert SCRIPT in soup.select_one("#summary li").get_text()
    assert "roc_auc 0.9100 &gt;= 0.7500" in page
    assert soup.select_one("#slices").get_text().count("Feb|Mar") == 1  # no Markdown escaping in HTML
    markdown, card = review.render_markdown(facts), review.render_model_card(facts)
    assert f"- intent v2 (Purchase intent {SCRIPT})" in markdown  # Markdown is not HTML-escaped
    assert "&lt;" not in markdown + card
    assert "&#" not in markdown + card
    assert f"## Known limitations\n\nOne shop, one year. {SCRIPT} | not a table\n" in card  # prose keeps its `|`
    assert "| Month | Feb\\|Mar | 300 | 0.6000 | 0.3000 | FAIL roc_auc ≥ 0.7 |" in markdown
    assert "| citation | Sakar et al. (2019) \\| UCI |" in card
    assert "| note | two lines \\| piped |" in markdown + card  # newlines flattened too
    for table in _tables(markdown) + _tables(card):  # escaped `|` never add a column
        columns = {line.replace("\\|", "").count("|") for line in table}
        assert len(columns) == 1, table


def test_failed_checks_get_the_fail_class(facts):
    soup = _soup(facts)
    results = {tr.td.get_text(): tr.find_all("td")[1] for tr in soup.select("#gate tbody tr")}
    assert results["champion.roc_auc"]["class"] == ["fail"]
    assert results["champion.roc_auc"].get_text() == "FAIL"
    assert results["floor.roc_auc"]["class"] == ["pass"]
    verdicts = [tr.find_all("td")[-1] for tr in soup.select("#slices tbody tr")]
    assert [td.get("class") for td in verdicts] == [["pass"], ["fail"], None]
    assert verdicts[2].get_text() == "not gated (< 50 rows or undefined)"
    assert not soup.select("#metrics td[class], #lineage td[class]")  # only verdicts are coloured


def test_no_champion_renders_placeholders_not_blanks(tmp_path):
    evaluation = Evaluation(plots=[], champion_version=None, champion_metrics=None, slices=[], champion_error="timeout")
    facts = make_facts(tmp_path, evaluation=evaluation, champion=None, shift=[], label_shift={}, config_diff=[],
                       shift_note="no champion yet: nothing to compare with")
    soup = _soup(facts)
    assert [s["id"] for s in soup.find_all("section")] == list(SECTIONS)
    assert soup.select_one("#slices em").get_text() == "none"
    assert "no champion yet: nothing to compare with" in soup.select_one("#data").get_text()
    assert "label " not in soup.select_one("#data").get_text()
    assert soup.select_one("#config").get_text(strip=True).endswith("(or no champion yet).")
    assert "champion could not be scored: timeout" in soup.select_one("#summary").get_text()
    markdown = review.render_markdown(facts)
    assert "## Slices\n\n_none_\n" in markdown
    assert "no champion yet: nothing to compare with\n\n_none_\n" in markdown
    assert "## Training configuration diff\n\n_identical to the champion's (or no champion)_\n" in markdown
    assert "| rows | 12330 | – |" in markdown
    assert "## Slices\n\n_none_\n" in review.render_model_card(facts)


def test_non_string_cells_render(tmp_path):
    slices = [{"slice": "Region", "value": 3, "rows": 60, "roc_auc": 0.8, "pr_auc": 0.5}]
    facts = make_facts(tmp_path, evaluation=Evaluation(plots=[], slices=slices))
    assert [td.get_text() for td in _soup(facts).select("#slices td")][:3] == ["Region", "3", "60"]
    assert "| Region | 3 | 60 | 0.8000 | 0.5000 |" in review.render_markdown(facts)


def test_a_missing_variable_raises_instead_of_rendering_blank(facts):
    card = SimpleNamespace(**{k: v for k, v in vars(Card()).items() if k != "limitations"})
    card_use_case = replace(UseCase(), card=card)
    with pytest.raises(jinja2.UndefinedError, match="limitations"):
        review.render_model_card(replace(facts, use_case=card_use_case))
    env = review.template_environment()
    with pytest.raises(jinja2.UndefinedError, match="plots"):
        env.get_template("review.html.j2").render(review.template_context(facts))  # plots not passed
    for name in ("review.md.j2", "model_card.md.j2", "review.html.j2"):
        with pytest.raises(jinja2.UndefinedError):
            env.get_template(name).render()


def test_write_review_writes_the_three_files(facts, tmp_path):
    paths = review.write_review(facts, tmp_path / "reports" / "intent")
    assert {k: p.name for k, p in paths.items()} == {
        "html": "review-v2.html", "markdown": "review-v2.md", "model_card": "model-card-v2.md"}
    assert paths["html"].read_text(encoding="utf-8") == review.render_html(facts)
    assert paths["markdown"].read_text(encoding="utf-8") == review.render_markdown(facts)
    assert paths["model_card"].read_text(encoding="utf-8") == review.render_model_card(facts)
