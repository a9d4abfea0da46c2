"""The cold-start use case through the real retraining flow: ``models:/coldstart@champion`` ranks
the whole item table, items held out of training (no history) included, never an item the user
has seen; metrics.json and the review hold warm and cold metrics side by side and the shop
sentence (150 MovieLens users' ratings of 500 movies from the data mirror, two epochs)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from components.evaluation.coldstart import cold_item_mask
from tests.conftest import MIRROR, movielens_slice, needs_mirror

pytestmark = [pytest.mark.integration, needs_mirror]


def test_coldstart_champion_ranks_items_it_never_saw_and_reviews_warm_beside_cold(project):
    import mlflow

    from components.data.ingest import sha256_file
    from flows.retrain import retrain

    # given 150 users' ratings of the first 500 movies (fewer titles to encode), the item table,
    # two epochs and the peer check advisory
    folder = project / "data" / "coldstart"
    folder.mkdir(parents=True)
    ratings = movielens_slice(150)
    ratings[ratings["item_id"] <= 500].to_csv(folder / "u.data", sep="\t", header=False, index=False)
    for name in ("u.item", "u.genre"):
        shutil.copy(MIRROR / "movielens_100k" / name, folder / name)
    files = {name: sha256_file(folder / name) for name in ("u.data", "u.item", "u.genre")}
    overrides = {"use_cases.coldstart.data.files": files, "use_cases.coldstart.train.max_epochs": 2,
                 "use_cases.coldstart.train.eval_every_epochs": 1, "use_cases.coldstart.train.top_k": 5000,
                 "use_cases.coldstart.gate.floors": {"cold_ndcg_at_10": 0.0},
                 "use_cases.coldstart.gate.baseline_policy": "advisory", "common.bootstrap_rounds": 50}
    # when the flow trains the first version
    first = retrain("coldstart", overrides)
    # then it is champion and ranks every item of the table a user has not seen, cold ones too
    assert first["champion_version"] == "1"
    ratings = pd.read_csv(folder / "u.data", sep="\t", header=None, names=["user_id", "item_id", "r", "t"])
    items = np.sort(ratings["item_id"].unique())
    cold = set(items[cold_item_mask(items, 0.2, 42)].tolist())
    user = int(ratings["user_id"].iloc[0])
    answer = mlflow.pyfunc.load_model("models:/coldstart@champion").predict(pd.DataFrame({"user_id": [user]}))
    ranked = [int(i) for i in answer["items"].iloc[0]]
    watched = set(ratings.loc[ratings["user_id"] == user, "item_id"])
    scores = np.asarray(answer["scores"].iloc[0])
    assert np.all(np.isfinite(scores))
    scored = {item for item, score in zip(ranked, scores, strict=True) if score > 0}
    assert cold
    assert cold <= scored
    # the user's training history is masked (score 0 after the softmax), all of it rated items
    masked = set(ranked) - scored
    assert masked
    assert masked <= watched - cold
    # metrics.json has warm and cold metrics and each peer's paired comparison
    metrics = json.loads((project / "reports" / "coldstart" / "metrics.json").read_text())
    assert {"ndcg_at_10", "cold_ndcg_at_10", "cold_recall_at_10", "cold_coverage",
            "vs_content_knn_cold_ndcg_at_10", "vs_genre_affinity_cold_ndcg_at_10", "vs_ease_ndcg_at_10"} \
        <= set(metrics["model"])
    assert metrics["baseline_comparison"]["metric"] == "cold_ndcg_at_10"
    review = next((project / "reports" / "coldstart").glob("review-v1.md")).read_text()
    assert "reaches the top 10 of" in review
    assert "(warm)" in review
    assert "(cold)" in review
