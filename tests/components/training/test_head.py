"""The logistic head: support's softmax layer solved by L-BFGS on the features below it, in Keras."""

from __future__ import annotations

import numpy as np
import pytest

from components.config import load_params
from components.errors import ConfigError
from components.models.scorer import RowScorer
from components.training.head import fit_softmax_classifier, layer_features
from components.use_cases import get_use_case
from tests.conftest import ROOT, support_slice


def _support(**train):
    """Support's builder and its train section with ``train`` changed, on 8 messages per intent."""
    params = load_params(ROOT / "params.yaml")
    use_case = get_use_case("support", params)
    config = use_case.configure(params)
    frames = support_slice(train_per_class=8, test_per_class=2)
    classes = tuple(sorted(frames["train"]["category"].unique()))
    index = {c: i for i, c in enumerate(classes)}
    return (use_case, config, config.train.model_copy(update=train), frames, classes,
            lambda f: f["category"].map(index).to_numpy("int64"))


def test_the_solved_head_is_scikit_learns_logistic_regression_inside_the_keras_model():
    from sklearn.linear_model import LogisticRegression

    # given support's hybrid model (encoder + TF-IDF bags) with the logistic head
    use_case, config, train_params, frames, classes, codes = _support(head="logistic", head_c=10.0, hidden_units=0)
    train, test = frames["train"], frames["test"]
    model = use_case.builder.build(train, config.features, train_params, config.seed, classes=classes)
    # when its softmax layer is solved on the training rows
    fit = fit_softmax_classifier(model, train, train.iloc[:0], codes, train_params, config.seed)
    # then the Keras model scores raw text exactly as the same regression on the same features does
    features = layer_features(model, "head_dropout", train, batch_rows=100)
    reference = LogisticRegression(C=10.0, max_iter=1000).fit(features, codes(train))
    probabilities = RowScorer(model).score_outputs(test)["output"]
    expected = reference.predict_proba(layer_features(model, "head_dropout", test, batch_rows=100))
    np.testing.assert_allclose(probabilities, expected, atol=2e-4)
    assert fit.epochs_run > 0
    assert fit.fit_seconds > 0
    # and it learned: far above the 1/77 of guessing on the held-out messages
    assert (probabilities.argmax(axis=1) == codes(test)).mean() > 0.5


@pytest.mark.parametrize(("change", "says"), [
    ({"hidden_units": 16}, "hidden_units: 0"),
    ({"hidden_units": 0, "validation": True}, "validation_fraction: 0"),
])
def test_the_logistic_head_refuses_a_model_it_cannot_solve(change, says):
    use_case, config, train_params, frames, classes, codes = _support(
        head="logistic", **{k: v for k, v in change.items() if k != "validation"})
    train = frames["train"]
    # (the TF-IDF bags alone: the check is the same whatever lies below the head)
    model = use_case.builder.build(train, config.features, train_params.model_copy(update={"encoder": None}),
                                   config.seed, classes=classes)
    validation = train.head(5) if change.get("validation") else train.iloc[:0]
    with pytest.raises(ConfigError, match=says):
        fit_softmax_classifier(model, train, validation, codes, train_params, config.seed)


def test_the_logistic_head_needs_every_class_in_training():
    use_case, config, train_params, frames, classes, codes = _support(head="logistic", hidden_units=0, encoder=None)
    train = frames["train"]
    model = use_case.builder.build(train, config.features, train_params, config.seed, classes=classes)
    fewer = train[train["category"] != classes[0]]
    with pytest.raises(ConfigError, match="every class in training"):
        fit_softmax_classifier(model, fewer, fewer.iloc[:0], codes, train_params, config.seed)

