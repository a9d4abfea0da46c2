"""The tune: section, the seeded search, pruning per epoch and the proposed params.yaml diff."""

from __future__ import annotations

import pytest

from components.config import load_params
from components.errors import ConfigError
from components.overrides import load_yaml, merge_defaults
from components.training.fit import FitResult
from components.training.proposal import propose_diff, set_lines
from components.training.tune import (
    TrialOutcome,
    ask_trials,
    best_outcome,
    create_study,
    outcome_of,
    parse_tune,
    pruning_callback,
    shipped_values,
    tell_outcome,
)
from tests.conftest import ROOT

WHERE = "params.use_cases.intent.tune"


def intent_section() -> dict:
    """The intent section of the shipped params.yaml, its builder's defaults merged in."""
    return load_params(ROOT / "params.yaml").use_cases["intent"].model_dump()


def tune_section(**params) -> dict:
    return {"metric": "val_auc", "direction": "maximize", "trials": 3, "params": params}


@pytest.mark.parametrize("name", ["intent", "ctr"])
def test_the_shipped_tune_sections_parse_and_their_shipped_values_are_read(name):
    section = load_params(ROOT / "params.yaml").use_cases[name].model_dump()
    tune = parse_tune(section["tune"], section, f"params.use_cases.{name}.tune")
    shipped = shipped_values(tune, section)
    assert set(shipped) == set(tune.params)
    assert shipped["train.learning_rate"] == section["train"]["learning_rate"]


@pytest.mark.parametrize(("raw", "named", "why"), [
    (tune_section(**{"train.learnin_rate": {"low": 0.001, "high": 0.01}}), f"{WHERE}.params.train.learnin_rate",
     "not a key of this use case"),
    (tune_section(**{"train.learning_rate": {"low": 0.01, "high": 0.01}}), f"{WHERE}.params.train.learning_rate",
     "empty range"),
    (tune_section(**{"train.hidden_units": {"choices": []}}), f"{WHERE}.params.train.hidden_units", "choices is empty"),
    (tune_section(**{"train.hidden_units": {"choices": [[8]]}}), f"{WHERE}.params.train.hidden_units",
     "not one of the choices"),
    (tune_section(**{"train.l2": {"low": 0.0, "high": 0.1, "log": True}}), f"{WHERE}.params.train.l2", "low > 0"),
    (tune_section(**{"evaluate.test_fraction": {"low": 0.1, "high": 0.3}}), f"{WHERE}.params.evaluate.test_fraction",
     "only values under train or features"),
    (tune_section(), f"{WHERE}.params", "empty"),
    ({**tune_section(**{"train.dropout": {"low": 0.0, "high": 0.5}}), "metric": "auc"}, f"{WHERE}.metric",
     "not a validation metric"),
    ({**tune_section(**{"train.dropout": {"low": 0.0, "high": 0.5}}), "trails": 3}, f"{WHERE}.trails", "unknown key"),
])
def test_a_bad_tune_section_is_a_config_error_naming_the_key(raw, named, why):
    with pytest.raises(ConfigError) as error:
        parse_tune(raw, intent_section(), WHERE)
    assert named in str(error.value)
    assert why in str(error.value)


def search_tune(trials: int = 6):
    raw = tune_section(**{"train.learning_rate": {"low": 0.0001, "high": 0.01, "log": True},
                          "train.hidden_units": {"choices": [[128, 64], [64]]}, "train.batch_size": {"low": 64, "high": 512}})
    return parse_tune({**raw, "trials": trials, "startup_trials": 2}, intent_section(), WHERE)


def test_the_search_is_seeded_starts_with_the_shipped_values_and_keeps_types(tmp_path):
    # given two studies with the same seed
    tune = search_tune()
    shipped = shipped_values(tune, intent_section())
    asked = []
    for run in ("a", "b"):
        study = create_study(tune, 42, tmp_path / run / "study.journal", shipped)
        specs = []
        for _ in range(tune.trials):  # a made-up objective: lower learning rates score higher
            [(trial, spec)] = ask_trials(study, tune, 1)
            value = 1.0 - spec.values["train.learning_rate"]
            tell_outcome(study, trial, TrialOutcome(spec.number, spec.values, "complete", value))
            specs.append(spec)
        asked.append(specs)
    # then they ask the same values, the first trial trains the shipped ones, and types are kept
    assert [s.values for s in asked[0]] == [s.values for s in asked[1]]
    first = asked[0][0]
    assert first.shipped
    assert first.values == shipped
    assert all(isinstance(s.values["train.batch_size"], int) for s in asked[0])
    assert all(s.values["train.hidden_units"] in ([128, 64], [64]) for s in asked[0])
    assert len({s.values["train.learning_rate"] for s in asked[0]}) == tune.trials


def test_a_trial_behind_the_median_is_pruned_after_the_warm_up_epochs(tmp_path):
    import optuna

    # given a study whose first trials reached val_auc 0.9 at every epoch
    raw = {**tune_section(**{"train.dropout": {"low": 0.0, "high": 0.5}}), "prune_startup_trials": 2,
           "prune_warmup_epochs": 1, "include_shipped": False}
    tune = parse_tune(raw, intent_section(), WHERE)
    study = create_study(tune, 42, tmp_path / "study.journal")
    for _ in range(2):
        trial = study.ask()
        for epoch in (1, 2, 3):
            trial.report(0.9, epoch)
        study.tell(trial, 0.9)
    # when a new trial reports 0.6 after each epoch through the Keras callback
    import keras

    callback = pruning_callback(optuna.trial.Trial(study, study.ask()._trial_id), "val_auc")
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    callback.set_model(model)
    callback.on_epoch_end(0, {"val_auc": 0.6})
    # then the warm-up epoch is never pruned, the next one is: the fit is told to stop
    assert not callback.pruned
    callback.on_epoch_end(1, {"val_auc": 0.6})
    assert callback.pruned
    assert model.stop_training


def test_the_value_is_the_metric_at_the_kept_epoch_and_a_missing_metric_is_a_config_error():
    tune = search_tune()
    [(_, spec)] = ask_trials(_study(tune), tune, 1)
    fit = FitResult(model=None, epochs_run=3, best_epoch=2, fit_seconds=1.0,
                    history={"val_auc": [0.7, 0.8, 0.75], "val_loss": [0.5, 0.4, 0.45]})
    outcome = outcome_of(spec, fit, "val_auc", pruned=False, seconds=2.0)
    assert (outcome.state, outcome.value, outcome.epochs, outcome.curve) == ("complete", 0.8, 3, [0.7, 0.8, 0.75])
    with pytest.raises(ConfigError, match=r"'val_pr_auc' is not recorded.*\['val_auc', 'val_loss'\]"):
        outcome_of(spec, fit, "val_pr_auc", pruned=False, seconds=2.0)


def _study(tune):
    import optuna

    return optuna.create_study(direction=tune.direction, sampler=optuna.samplers.TPESampler(seed=1))


@pytest.mark.parametrize(("direction", "best"), [("maximize", 2), ("minimize", 0)])
def test_the_best_trial_ignores_pruned_and_failed_ones_and_ties_go_to_the_earliest(direction, best):
    outcomes = [TrialOutcome(0, {}, "complete", 0.5), TrialOutcome(1, {}, "pruned", 0.99),
                TrialOutcome(2, {}, "complete", 0.8), TrialOutcome(3, {}, "complete", 0.8),
                TrialOutcome(4, {}, "failed", None)]
    chosen = best_outcome(outcomes, direction)
    assert chosen is not None
    assert chosen.number == best
    assert best_outcome([TrialOutcome(0, {}, "failed", None)], direction) is None


def test_the_diff_adds_a_section_the_defaults_fill_and_replaces_written_values_keeping_comments():
    text = (ROOT / "params.yaml").read_text(encoding="utf-8")
    # intent's train values come from defaults.builder.tabular: the diff adds intent.train
    diff = propose_diff(text, "intent", {"train.learning_rate": 0.003, "train.hidden_units": [64]})
    added = [line for line in diff.splitlines() if line.startswith("+") and not line.startswith("+++")]
    assert added == ["+    train:", "+      learning_rate: 0.003", "+      hidden_units: [64]"]
    assert not [line for line in diff.splitlines() if line.startswith("-") and not line.startswith("---")]
    # ctr writes its train values: they are replaced in place, the trailing comment kept
    diff = propose_diff(text, "ctr", {"train.validation_fraction": 0.25, "train.dropout": 0.1})
    assert "-      dropout: 0.2\n+      dropout: 0.1\n" in diff
    assert "+      validation_fraction: 0.25  # of the 90% left after the test split: 7:2:1 overall\n" in diff
    assert propose_diff(text, "ctr", {}) == ""
    assert set_lines("ctr", {"train.hidden_units": [128, 128]}) == ["--set 'use_cases.ctr.train.hidden_units=[128, 128]'"]


def test_an_edit_the_diff_cannot_make_is_a_config_error_and_the_text_reads_back_unchanged_otherwise():
    text = (ROOT / "params.yaml").read_text(encoding="utf-8")
    with pytest.raises(ConfigError, match="written inline"):
        propose_diff(text, "support", {"split.seed": 3})  # support's split is an inline mapping
    before = merge_defaults(load_yaml(text))
    propose_diff(text, "intent", {"train.dropout": 0.3})
    assert merge_defaults(load_yaml(text)) == before


def test_a_fit_inside_a_trial_reports_each_epoch_and_stops_when_pruned(tmp_path):
    import optuna

    from components.data.splits import split_frame
    from components.training.fit import fit_callbacks, fit_model
    from components.use_cases import get_use_case
    from tests.conftest import intent_slice

    # given a study whose first trial reached val_auc 1.0 from epoch 1 on, and no warm-up
    raw = {**tune_section(**{"train.dropout": {"low": 0.0, "high": 0.5}}), "prune_startup_trials": 1,
           "prune_warmup_epochs": 0, "include_shipped": False}
    tune = parse_tune(raw, intent_section(), WHERE)
    study = create_study(tune, 42, tmp_path / "study.journal")
    first = study.ask()
    for epoch in range(1, 6):
        first.report(1.0, epoch)
    study.tell(first, 1.0)
    callback = pruning_callback(optuna.trial.Trial(study, study.ask()._trial_id), "val_auc")
    # when the intent model is fitted for up to 5 epochs with the trial's callback in place
    params = load_params(ROOT / "params.yaml", {"use_cases.intent.train.max_epochs": 5})
    use_case = get_use_case("intent", params)
    config = use_case.configure(params)
    splits = split_frame(intent_slice(800), config.label, 0.25, 0.15, config.seed)
    model = use_case.builder.build(splits.train, config.features, config.train, config.seed, label=config.label)
    with fit_callbacks(callback):
        fit = fit_model(model, splits.train, splits.validation, config.label, 64, max_epochs=5, patience=5, seed=1)
    # then epoch 1 was reported to the trial, which the pruner stopped there
    assert callback.pruned
    assert fit.epochs_run == 1
    assert [t.intermediate_values for t in study.get_trials() if t.number == 1] == [{1: fit.history["val_auc"][0]}]
