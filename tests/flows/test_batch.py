"""Batch scoring flow with the real @champion: scores, version, md5, rejects, progress artifact."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from flows.cli import app
from tests.conftest import FAST, intent_slice

pytestmark = pytest.mark.integration


def test_batch_scoring_writes_scores_with_version_and_md5_and_rejects_bad_rows(project, tmp_path):
    from components.serving.batch import md5_file
    from flows.batch import batch_score
    from flows.retrain import retrain

    retrain("intent", FAST)
    rows = intent_slice(1200, seed=3).drop(columns=["Revenue"]).reset_index(drop=True)
    rows["PageValues"] = rows["PageValues"].astype(object)
    rows.loc[[5, 17], "PageValues"] = "twelve"  # typed by hand, not a number
    rows.loc[40, "Month"] = None
    source = tmp_path / "sessions.csv"
    rows.to_csv(source, index=False)

    summary = batch_score("intent", str(source))
    scored = pd.read_csv(tmp_path / "sessions.scored.csv")
    rejects = pd.read_csv(tmp_path / "sessions.scored.rejects.csv")
    assert (summary["rows_scored"], summary["rows_rejected"]) == (1197, 3)
    assert len(scored) == 1197
    assert scored["score"].between(0, 1).all()
    assert set(scored["model_version"]) == {1}
    assert set(scored["input_md5"]) == {md5_file(source)}
    assert sorted(rejects["reject_reason"]) == ["Month is empty", "PageValues is not a number", "PageValues is not a number"]

    # the CLI runs the same flow; a file without a needed column is refused as a whole
    rows.drop(columns=["Month"]).to_csv(tmp_path / "broken.csv", index=False)
    result = CliRunner().invoke(app, ["score", "intent", str(tmp_path / "broken.csv")])
    assert result.exit_code != 0
    assert "Month" in str(result.exception)

    # an empty file, or one with column names only, is refused in one line: nothing to score
    for name, content in (("empty.csv", ""), ("header.csv", ",".join(rows.columns) + "\n")):
        (tmp_path / name).write_text(content)
        refused = CliRunner().invoke(app, ["score", "intent", str(tmp_path / name)])
        assert refused.exit_code == 1, refused.output
        assert "nothing to score" in str(refused.exception)
        assert "Traceback" not in refused.output
        assert not (tmp_path / name.replace(".csv", ".scored.csv")).exists()
