"""Promotion mode `review`: the flow pauses (Prefect's pause_flow_run with input) for a reviewer."""

from __future__ import annotations

import threading
import time

import pytest
from typer.testing import CliRunner

from components.config import load_settings
from components.errors import ReviewError
from flows.cli import app
from tests.conftest import FAST, skip_or_fail

pytestmark = pytest.mark.integration

REVIEW = {**FAST, "use_cases.intent.gate.promotion_mode": "review", "use_cases.intent.gate.review_poll_s": 1,
          "use_cases.intent.gate.review_timeout_s": 240}


def _in_background(overrides: dict) -> tuple[threading.Thread, dict]:
    from flows.retrain import retrain

    outcome: dict = {}

    def run() -> None:
        try:
            outcome["result"] = retrain("intent", overrides)
        except Exception as exc:  # the test inspects what the flow raised
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def _wait_until_paused(version: str, thread: threading.Thread, timeout_s: float = 300) -> str:
    """Wait for the version's review to be pending and its flow run to be Paused; its run id."""
    from prefect import get_client

    from components.release.registry import get_version

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and thread.is_alive():
        found = get_version(load_settings(), "intent", version)
        if found is not None and found.tags.get("review.status") == "pending":
            run_id = found.tags["prefect_flow_run_id"]
            with get_client(sync_client=True) as client:
                if client.read_flow_run(run_id).state.is_paused():
                    return run_id
        time.sleep(1)
    raise AssertionError(f"v{version} never paused for review")


def test_review_approve_then_reject_then_timeout(project, tmp_path):
    from components.release.ledger import read_ledger
    from components.release.registry import get_alias_version, get_version

    settings = load_settings()
    # a passing challenger pauses; approving it through the CLI (Prefect's input API) promotes it
    thread, outcome = _in_background(REVIEW)
    _wait_until_paused("1", thread)
    assert get_alias_version(settings, "intent", "champion") is None  # nothing moved while paused
    answer = CliRunner().invoke(app, ["review", "approve", "intent", "1", "--reason", "numbers look right"])
    assert answer.exit_code == 0, answer.output
    thread.join(timeout=300)
    assert outcome["result"]["champion_version"] == "1"
    entry = read_ledger(settings, "intent")[-1]
    assert (entry.action, entry.to_version, entry.reason) == ("approve", "1", "numbers look right")
    # the reviewer the ledger names is the one whose answer the registry holds (written as that user)
    from components.release.ledger import current_actor

    assert entry.actor == current_actor(settings)
    assert '"reason": "numbers look right"' in get_version(settings, "intent", "1").tags["review.answer"]
    assert get_version(settings, "intent", "1").tags["review.status"] == "approved"
    # the release review and the model card exist for v1 (reports/, the MLflow run, the version page)
    _assert_review_page(project / "reports" / "intent" / "review-v1.html", None)
    card = get_version(settings, "intent", "1").description
    for heading in ("Intended use", "Data", "Metrics", "Slices", "Known limitations", "Lineage"):
        assert f"## {heading}" in card
    assert "95% CI" in card

    # a challenger that passes the gate but is rejected leaves the champion alone
    better = {**REVIEW, "use_cases.intent.gate.min_delta": -1.0}  # passes the gate whatever its numbers
    thread, outcome = _in_background(better)
    _wait_until_paused("2", thread)
    answer = CliRunner().invoke(app, ["review", "reject", "intent", "2", "--reason", "holiday freeze"])
    assert answer.exit_code == 0, answer.output
    thread.join(timeout=300)
    assert isinstance(outcome["error"], ReviewError)
    assert "holiday freeze" in str(outcome["error"])
    assert str(get_alias_version(settings, "intent", "champion").version) == "1"
    assert get_version(settings, "intent", "2").tags["review.status"] == "rejected"
    _assert_review_page(project / "reports" / "intent" / "review-v2.html", "1")
    from components.release.registry import connect

    logged = {a.path for a in connect(settings).list_artifacts(get_version(settings, "intent", "2").run_id, "review")}
    assert logged == {"review/review-v2.html", "review/review-v2.md", "review/model-card-v2.md"}
    # answering again is refused: the review is over
    again = CliRunner().invoke(app, ["review", "approve", "intent", "2", "--reason", "oops"])
    assert again.exit_code != 0

    # nobody answers: the pause times out and the champion stays
    thread, outcome = _in_background({**better, "use_cases.intent.gate.review_timeout_s": 3})
    _assert_not_promoted(settings, thread, outcome, "3", "no review within 3 s", "timed out")

    # an answer submitted straight to Prefect (as the Prefect UI does: no answer in the registry,
    # a typed name) is not accepted, and the champion stays
    from uuid import UUID

    from prefect.flow_runs import resume_flow_run

    thread, outcome = _in_background(better)
    run_id = _wait_until_paused("4", thread)
    resume_flow_run(UUID(run_id), run_input={"approve": True, "reason": "looks fine", "reviewer": "the-ceo"})
    _assert_not_promoted(settings, thread, outcome, "4", "not confirmed by the registry", "unconfirmed answer")

    # last, as it skips without chromium: the page renders in a browser, and the browser check
    # does catch an empty section
    import re

    _assert_renders_in_chromium(project / "reports" / "intent" / "review-v2.html", tmp_path)
    page = (project / "reports" / "intent" / "review-v2.html").read_text(encoding="utf-8")
    hollow = tmp_path / "hollow.html"
    hollow.write_text(re.sub(r'(<section id="gate"><h2>[^<]*</h2>).*?(</section>)', r"\1\2", page, flags=re.S))
    assert hollow.read_text() != page
    with pytest.raises(AssertionError, match="section gate renders empty"):
        _assert_renders_in_chromium(hollow, tmp_path)


def _assert_not_promoted(settings, thread, outcome: dict, version: str, says: str, status: str) -> None:
    """The run of ``version`` ended in a ReviewError saying ``says``; v1 stays the champion, the
    version's review status is ``status`` and the ledger holds only v1's promotion."""
    from components.release.ledger import read_ledger
    from components.release.registry import get_alias_version, get_version

    thread.join(timeout=300)
    assert isinstance(outcome["error"], ReviewError)
    assert says in str(outcome["error"])
    assert str(get_alias_version(settings, "intent", "champion").version) == "1"
    assert get_version(settings, "intent", version).tags["review.status"] == status
    assert [e.to_version for e in read_ledger(settings, "intent")] == ["1"]


def _assert_review_page(path, champion_version: str | None) -> None:
    """Every section of the release review has content and the plots are embedded."""
    from bs4 import BeautifulSoup

    from components.release.review import SECTIONS

    soup = BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")
    for key in SECTIONS:
        section = soup.find("section", id=key)
        assert section is not None, f"section {key} missing"
        text = section.get_text(" ", strip=True)
        assert len(text) > len(section.find("h2").get_text()) + 5, f"section {key} is empty"
    images = soup.select("#plots img, #business img")
    assert len(images) >= 4
    assert all(img["src"].startswith("data:image/png;base64,") for img in images)
    assert soup.select_one("#business img")["alt"] == "gains"
    metrics = soup.select_one("#metrics").get_text(" ")
    assert "roc_auc" in metrics
    if champion_version:
        assert f"champion v{champion_version}" in soup.select_one("#summary").get_text(" ")
        assert "PSI" in soup.select_one("#data").get_text(" ")
        assert soup.select("#data table")[1].find_all("tr")[1:]  # a PSI row per feature


PROBE = """<script>
window.addEventListener('load', () => {
  const facts = {};
  document.querySelectorAll('section').forEach(s => {
    const heading = s.querySelector('h2') ? s.querySelector('h2').innerText.length : 0;
    facts[s.id] = {text: s.innerText.trim().length - heading, visible: s.getBoundingClientRect().height};
  });
  const images = [...document.images].map(i => i.complete && i.naturalWidth > 0);
  document.body.setAttribute('data-probe', JSON.stringify({sections: facts, images}));
});
</script>"""


def _assert_renders_in_chromium(path, tmp_path) -> None:
    """Open the report in headless Chromium; every section must show text and every plot decode."""
    import json
    import shutil
    import subprocess

    from bs4 import BeautifulSoup

    from components.release.review import SECTIONS

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        skip_or_fail("the browser test needs Debian's chromium (apt-get install chromium; .ci/run installs it)")
    probed = tmp_path / "probed.html"
    probed.write_text(path.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
    dom = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000",
         "--dump-dom", probed.as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout
    probe = json.loads(BeautifulSoup(dom, "html.parser").body["data-probe"])
    for key in SECTIONS:
        assert probe["sections"][key]["text"] > 5, f"section {key} renders empty in Chromium"
        assert probe["sections"][key]["visible"] > 0
    assert probe["images"]
    assert all(probe["images"]), "a plot did not decode in Chromium"
