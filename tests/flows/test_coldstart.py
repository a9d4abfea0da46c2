"""The cold-start use case through the real retraining flow: ``models:/coldstart@champion`` ranks
the whole item table, items held out of training (no history) included, never an item the user
has seen; metrics.json and the review hold warm and cold metrics side by side and the shop
sentence; ``funnel serve``'s store ranks a movie added to the item table after training, without
retraining, and refuses a bad new row by its column (150 MovieLens users' ratings of 500 movies
from the data mirror, two epochs)."""

from __future__ import annotations

import http.client
import json
import logging
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

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
    ratings = ratings[ratings["item_id"] <= 500]
    ratings.to_csv(folder / "u.data", sep="\t", header=False, index=False)
    # the item table holds the rated movies; the next ones are added after training
    movies = (MIRROR / "movielens_100k" / "u.item").read_bytes().splitlines(keepends=True)
    rated = set(ratings["item_id"])
    (folder / "u.item").write_bytes(b"".join(m for m in movies[:500] if int(m.split(b"|")[0]) in rated))
    shutil.copy(MIRROR / "movielens_100k" / "u.genre", folder / "u.genre")
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

    # when funnel serve's store serves the champion and a real movie (501) is added to the item table
    from components.config import load_settings
    from components.serving.app import BackgroundServer, build_app, open_store
    from components.serving.store import ServeParams

    store = open_store(load_settings(), ["coldstart"], ServeParams(poll_interval_s=3600))
    try:
        with BackgroundServer(build_app(store)) as server:
            before = rank(server.url, user)
            with (folder / "u.item").open("ab") as table:
                table.write(movies[500])
            store.refresh()
            after = rank(server.url, user)
            # then the new movie is ranked (scored from its title, year and genres), nothing retrained
            assert 501 not in before
            assert 501 in after
            assert set(after) == set(before) | {501}
            assert store.get("coldstart").version == "1"
            # when a bad row is added (a genre flag that is not 0/1), then it is refused by its
            # column, never its values, and the items served so far stay served
            fields = movies[501].split(b"|")
            fields[5] = b"7"
            with (folder / "u.item").open("ab") as table:
                table.write(b"|".join(fields))
            with logged("components.serving.catalogue") as records:
                store.refresh()
            assert any("'genre_unknown'" in r.getMessage() and "not 0 or 1" in r.getMessage() for r in records)
            assert not any(fields[1].decode("latin-1") in r.getMessage() for r in records)
            assert rank(server.url, user) == after
    finally:
        store.close()


def rank(url: str, user: int) -> list[int]:
    """The items ``POST /predict/coldstart`` ranks for ``user``."""
    connection = http.client.HTTPConnection(urlsplit(url).netloc, timeout=60)
    try:
        connection.request("POST", "/predict/coldstart", json.dumps({"rows": [{"user_id": user}]}),
                           {"Content-Type": "application/json"})
        answer = connection.getresponse()
        assert answer.status == 200
        return [int(i) for i in json.loads(answer.read())["predictions"][0]["items"]]
    finally:
        connection.close()


@contextmanager
def logged(name: str) -> Iterator[list[logging.LogRecord]]:
    """The records logger ``name`` emits while the block runs (Prefect's logging setup keeps
    components' records from reaching pytest's root handler)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append  # type: ignore[method-assign]
    logging.getLogger(name).addHandler(handler)
    try:
        yield records
    finally:
        logging.getLogger(name).removeHandler(handler)
