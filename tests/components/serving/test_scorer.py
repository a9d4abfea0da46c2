"""Serving's compiled path: a traced concrete function over a small real Keras model."""

from __future__ import annotations

import numpy as np
import pandas as pd

from components.serving.schema import pack_frame
from components.serving.scorer import CompiledScorer
from tests.components.serving.conftest import FIELDS


def test_compiled_path_scores_like_the_row_scorer(keras_model):
    from components.models.scorer import RowScorer

    frame = pd.DataFrame({"amount": [0.5, -2.0, 7.0], "visits": [1, 0, 12], "month": ["Feb", "Dec", "Jan"]})
    expected = RowScorer(keras_model).score(frame)
    scorer = CompiledScorer(keras_model, FIELDS)
    got = scorer.score_packed(pack_frame(FIELDS, frame), batch_size=2)["output"].reshape(-1)
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_compiled_path_takes_the_flat_call_only_when_it_matches_the_public_call(keras_model, monkeypatch):
    frame = pd.DataFrame({"amount": [0.5, -2.0], "visits": [1, 12], "month": ["Feb", "Dec"]})
    scorer = CompiledScorer(keras_model, FIELDS)
    assert scorer._fast is not None  # this TensorFlow has the flat call
    packed = pack_frame(FIELDS, frame)
    np.testing.assert_array_equal(scorer(packed)["output"], scorer._public_call(packed).numpy())
    # a TensorFlow whose flat call answers differently, or fails, is not trusted. The public call
    # passes the captured inputs by keyword, the fast path positionally: only the latter is broken
    original = type(scorer._function)._call_flat

    def answers_otherwise(self, args, *positional, **keywords):
        out = original(self, args, *positional, **keywords)
        return out * 0 + 7 if positional else out

    def fails(self, args, *positional, **keywords):
        if positional:
            raise TypeError("changed in this TensorFlow")
        return original(self, args, *positional, **keywords)

    for broken in (answers_otherwise, fails):
        monkeypatch.setattr(type(scorer._function), "_call_flat", broken)
        fallback = CompiledScorer(keras_model, FIELDS)
        assert fallback._fast is None
        np.testing.assert_array_equal(fallback(packed)["output"], scorer(packed)["output"])
