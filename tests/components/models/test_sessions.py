"""The next-item Keras models: prefix parsing, both architectures train and round-trip through saving."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from components.models.sessions import SessionFeatures, SessionsTrain, build_serving, build_session_model

FEATURES = SessionFeatures(session="s", item="i", time="t")


def cyclic_log(sessions: int = 120, items: int = 12) -> pd.DataFrame:
    """Sessions walking item k -> k + 1 (mod items): the next item is a function of the last."""
    rng = np.random.default_rng(0)
    rows = []
    for s in range(sessions):
        start = int(rng.integers(items))
        rows += [(s, 100 + (start + step) % items, float(step)) for step in range(5)]
    return pd.DataFrame(rows, columns=["s", "i", "t"])


def params(architecture: str, unroll: bool = False) -> SessionsTrain:
    return SessionsTrain(architecture=architecture, embedding_dim=16, max_length=4, dropout=0.0, blocks=1, heads=2,
                         learning_rate=0.02, learning_rate_decay=1.0, batch_size=32, max_epochs=15,
                         early_stopping_patience=15, top_k=3, unroll=unroll)


def test_the_prefix_layer_skips_unknown_items_and_keeps_the_latest_clicks_left_padded():
    import tensorflow as tf

    from components.models.session_layers import PrefixIds

    layer = PrefixIds(["a", "b", "c"], max_length=3)
    ids = layer(tf.constant([["a"], ["b zz c a b"], [""]])).numpy()
    assert ids.tolist() == [[0, 0, 1], [3, 1, 2], [0, 0, 0]]


def test_the_prefix_layer_puts_clicks_in_time_order_where_the_times_can_order_them():
    import tensorflow as tf

    from components.models.session_layers import PrefixIds

    layer = PrefixIds(["a", "b", "c"], max_length=3, items_input="items", times_input="times")
    prefixes = tf.constant([["c b a"], ["c b a"], ["c b a"], ["c b a"], ["b a"], ["c a"], [""]])
    times = tf.constant([["30 20 10.5"], [""], ["3 x 1"], ["1 2"], ["7 7"], ["1e3 5"], ["1"]])
    assert layer(prefixes, times).numpy().tolist() == [
        [1, 2, 3],  # ordered by the times
        [3, 2, 1],  # no times, too few, or one that is not unix seconds: the order sent
        [3, 2, 1],
        [3, 2, 1],
        [0, 2, 1],  # equal times keep the order sent
        [0, 3, 1],
        [0, 0, 0],
    ]


@pytest.mark.parametrize(("items", "times", "problem"), [
    ("a b", "2 1", None),
    ("a b", "2.25 1", None),
    ("a b", "", None),
    ("a b", None, None),
    ("", "", None),
    ("a b", "  2 \t 1 ", None),
    ("a b", "2 1 3", "3 times for 2 item ids"),
    ("", "1", "1 times for 0 item ids"),
    ("a b", "2 -1", "1 of 2 times are not unix seconds"),
    ("a b", "2 1e9", "1 of 2 times are not unix seconds"),
    ("a b", "2014-04-07T10:51:09Z 1", "1 of 2 times are not unix seconds"),
])
def test_times_problems_name_the_row_and_field_never_the_value(items, times, problem):
    from components.models.session_layers import times_problems

    found = times_problems(np.array(["a", items], dtype=object), np.array(["1", times], dtype=object), "times")
    assert [(row, field) for row, field, _ in found] == ([] if problem is None else [(1, "times")])
    if problem is not None:
        assert problem in found[0][2]
        assert all(token not in found[0][2] for token in ("-1", "1e9", "2014"))


@pytest.mark.parametrize(("architecture", "unroll"), [("gru", False), ("gru", True), ("sasrec", False)])
def test_a_trained_model_learns_the_walk_and_loads_back(architecture, unroll, tmp_path):
    import keras

    from components.models import register_layers
    from components.models.scorer import RowScorer
    from components.models.sessions import Catalogue, session_sequences, training_arrays
    from components.training.sequences import fit_session_model

    # given sessions whose next item follows from the last one
    log = cyclic_log()
    network = build_session_model(log, FEATURES, params(architecture, unroll), seed=1)
    catalogue: Catalogue = network.catalogue
    arrays = training_arrays([catalogue.index(s) for s in session_sequences(log, FEATURES)], 4)
    # when it trains a few epochs
    fit = fit_session_model(network, arrays, None, params(architecture, unroll), seed=1, epochs=15)
    assert np.all(np.isfinite(fit.history["loss"]))
    assert fit.history["loss"][-1] < fit.history["loss"][0]
    # then the served model puts the next item of the walk first, unknown ids skipped
    serving = build_serving(network, FEATURES, 3)
    path = tmp_path / "model.keras"
    serving.save(path)
    register_layers()
    loaded = RowScorer(keras.saving.load_model(path))
    if architecture == "gru":  # an unrolled GRU stays unrolled when read back
        assert loaded.model.get_layer("sequence_encoder").gru.unroll is unroll
    outputs = loaded.score_outputs({"items": np.array(["103 104", "103 104 999", ""])})
    assert outputs["items"].shape == (3, 3)
    assert outputs["items"][0, 0] == "105"
    assert outputs["items"][1].tolist() == outputs["items"][0].tolist()
    assert np.all(np.diff(outputs["scores"][0]) <= 0)
    # and its drift score classes every click of a log (session length x head / tail / new item)
    from components.tasks.next_item import NEXT_ITEM

    classes = NEXT_ITEM.drift_score(loaded)(log.assign(i=log["i"].where(log["s"] != 0, 999)))
    assert len(classes) == len(log)
    assert set(classes[log["s"].to_numpy() == 0]) == {3 * 3 + 2}  # 5 clicks (bucket 3: 5-9), a never-seen item
    assert set(classes[log["s"].to_numpy() != 0]) <= {9, 10}
