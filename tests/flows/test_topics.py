"""The clustering use case through the real retraining flow: ``models:/topics@champion`` assigns a
topic to raw text, the review shows the topic table, and a retrain is compared with the champion
(slices of the clothing reviews and the SemEval file from the data mirror)."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from components.errors import GateFailedError
from tests.conftest import MIRROR, needs_mirror

REVIEWS = "womens_clothing_reviews/WomensClothingE-CommerceReviews.parquet.brotli"
LABELLED = "semeval_absa_laptops/ABSA16_Laptops_Train_SB1_v2.xml"
pytestmark = [pytest.mark.integration, needs_mirror]


def write_slices(folder, negative: int = 200, other: int = 50) -> dict[str, str]:
    """A slice of the reviews (``negative`` rated <= 2, ``other`` above) and the whole labelled
    file, where the use case reads them; their sha256 by file."""
    from components.data.ingest import sha256_file

    reviews = pd.read_parquet(MIRROR / REVIEWS)
    reviews = reviews[reviews["Review Text"].notna()]
    picked = pd.concat([reviews[reviews["Rating"] <= 2].head(negative), reviews[reviews["Rating"] > 2].head(other)])
    (folder / REVIEWS).parent.mkdir(parents=True, exist_ok=True)
    picked.to_parquet(folder / REVIEWS, compression="brotli")
    (folder / LABELLED).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(MIRROR / LABELLED, folder / LABELLED)
    return {name: sha256_file(folder / name) for name in (REVIEWS, LABELLED)}


def test_topics_champion_assigns_raw_text_a_topic_and_a_retrain_meets_the_champion(project):
    import mlflow

    from flows.retrain import retrain

    # given a slice of the complaints and the labelled set in the project
    overrides = {
        "use_cases.topics.data.files": write_slices(project / "data" / "topics"),
        "use_cases.topics.validate.min_rows": 100,
        # the labelled sentences carry no rating: in this small slice they are most of the rows
        "use_cases.topics.validate.columns.rating": {"type": "float", "min": 1, "max": 5, "max_null_fraction": 0.95},
        "use_cases.topics.train.k_values": [5, 6],
    }
    # when the flow trains the first version
    first = retrain("topics", overrides)
    # then it is champion, and the registered model gives raw text a topic with its terms
    assert first["champion_version"] == "1"
    model = mlflow.pyfunc.load_model("models:/topics@champion")
    answer = model.predict(pd.DataFrame({"text": ["The zipper broke after one wash.", ""]}))
    assert {"topic_id", "topic", "similarity"} <= set(answer.columns)
    assert answer["topic"].iloc[0]
    metrics = json.loads((project / "reports" / "topics" / "metrics.json").read_text())
    assert metrics["model"]["nmi"] > metrics["baseline"]["nmi"]
    assert 5 <= metrics["model"]["topics"] <= 6
    # and the release review shows the topic table (terms, shares, examples by id)
    review = (project / "reports" / "topics" / "review-v1.md").read_text()
    assert "topic" in review
    assert "review:" in review
    # representatives are shown by id: no piece of a customer's review reaches the committed
    # metrics.json or the review
    reviews = pd.read_parquet(project / "data" / "topics" / REVIEWS)["Review Text"]
    pieces = [" ".join(text.split()[:6]) for text in reviews if len(text.split()) >= 6]
    metrics_text = (project / "reports" / "topics" / "metrics.json").read_text()
    assert not [piece for piece in pieces if piece in metrics_text or piece in review]
    # when the same data is retrained, the challenger meets the champion's recorded NMI: no better
    with pytest.raises(GateFailedError) as failed:
        retrain("topics", overrides)
    assert "champion v1" in str(failed.value)
    assert "nmi" in str(failed.value)
