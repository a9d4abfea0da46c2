"""Promotion mode `review`: the flow pauses (Prefect's pause_flow_run with input) for a reviewer."""

from __future__ import annotations

import threading
import time

import pytest
from typer.testing import CliRunner

from components.config import load_settings
from components.errors import ReviewError
from flows.cli import app
from tests.conftest import FAST

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

    from components.registry import get_version

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


def test_review_approve_then_reject_then_timeout(project):
    from components.ledger import read_ledger
    from components.registry import get_alias_version, get_version

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
    assert get_version(settings, "intent", "1").tags["review.status"] == "approved"

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
    # answering again is refused: the review is over
    again = CliRunner().invoke(app, ["review", "approve", "intent", "2", "--reason", "oops"])
    assert again.exit_code != 0

    # nobody answers: the pause times out and the champion stays
    thread, outcome = _in_background({**better, "use_cases.intent.gate.review_timeout_s": 3})
    thread.join(timeout=300)
    assert isinstance(outcome["error"], ReviewError)
    assert "no review within 3 s" in str(outcome["error"])
    assert str(get_alias_version(settings, "intent", "champion").version) == "1"
    assert get_version(settings, "intent", "3").tags["review.status"] == "timed out"
    assert [e.to_version for e in read_ledger(settings, "intent")] == ["1"]
