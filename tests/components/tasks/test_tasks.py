"""The Task protocol: every kind declares the metrics it computes, and the gate may name only those."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from components.config import load_params
from components.errors import ConfigError
from components.evaluation.binary import compute_binary_metrics
from components.evaluation.multiclass import compute_multiclass_metrics
from components.evaluation.ranking import ranking_metrics
from components.tasks import TASKS, Task, get_task
from components.tasks.binary import BinaryEvaluate
from components.tasks.multiclass import MulticlassEvaluate
from components.tasks.ranking import RankingEvaluate
from components.use_cases import get_use_case, list_use_cases

ROOT = Path(__file__).resolve().parents[3]
PROTOCOL = ("metric_names", "slice_metric_names", "split", "train", "evaluate", "drift_score", "business_sentences")


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_task_kind_implements_the_protocol(name):
    task: Task = get_task(name)
    assert task.name == name
    for method in PROTOCOL:
        assert callable(getattr(task, method)), method
    assert task.evaluate_type.model_config["extra"] == "forbid"


def test_unknown_task_kind_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown task kind 'sequence'"):
        get_task("sequence")


def test_binary_metric_names_are_the_metrics_it_computes():
    rng = np.random.default_rng(1)
    y, scores = rng.integers(0, 2, 200), rng.random(200)
    evaluate = BinaryEvaluate(test_fraction=0.2, lift_fractions=(0.1, 0.25), natural_positive_rate=0.01,
                              precision_target=0.5)
    computed = compute_binary_metrics(y, scores, 0.5, evaluate.lift_fractions, evaluate.natural_positive_rate,
                                      evaluate.precision_target)
    assert get_task("binary").metric_names(evaluate) == set(computed)


def test_multiclass_and_ranking_metric_names_are_the_metrics_they_compute():
    classes = ["a", "b", "c"]
    probabilities = np.full((3, 3), 1 / 3)
    computed = compute_multiclass_metrics(["a", "b", "c"], ["a", "c", "c"], probabilities, classes)
    assert get_task("multiclass").metric_names(MulticlassEvaluate(baseline_c=1.0, length_buckets=(5,))) == set(computed)
    ranked = ranking_metrics(np.array([[1, 2], [3, 1]]), [{1}, {2}], 2, 4)
    names = get_task("ranking").metric_names(RankingEvaluate(test_fraction=0.2, top_k=2, activity_buckets=(5,)))
    assert names == set(ranked) - {"users"}


@pytest.mark.parametrize(("key", "value", "message"), [
    ("use_cases.intent.gate.primary_metric", "roc_acu", "gate.primary_metric: 'roc_acu' is not a metric"),
    ("use_cases.intent.gate.floors", {"roc_auc": 0.9, "pr_acu": 0.6}, "gate.floors: 'pr_acu' is not a metric"),
    ("use_cases.intent.gate.slice_floors", {"pr_auc": 0.5}, "gate.slice_floors: 'pr_auc' is not a per-slice metric"),
    ("use_cases.recommend.gate.primary_metric", "ndcg_at_20", "'ndcg_at_20' is not a metric"),
])
def test_a_misspelt_gate_metric_fails_when_params_load(key, value, message):
    use_case = key.split(".")[1]
    params = load_params(ROOT / "params.yaml", {key: value})
    with pytest.raises(ConfigError, match=message):
        get_use_case(use_case).configure(params)


def test_every_shipped_use_case_gates_on_metrics_its_task_computes():
    params = load_params(ROOT / "params.yaml")
    for name in list_use_cases(params):
        use_case = get_use_case(name, params)
        config = use_case.configure(params)
        assert config.params.gate.primary_metric in use_case.task.metric_names(config.evaluate)


def _evaluation(metrics, baseline, champion=None):
    from components.evaluation.report import Evaluation

    return Evaluation(metrics=metrics, baseline_name="peer", baseline_metrics=baseline,
                      champion_version="3" if champion else None, champion_metrics=champion, champion_error=None,
                      slices=[], plots=[], threshold=0.5, test_rows=100)


def test_business_sentences_speak_the_shops_terms_per_task():
    terms = {"rows": "sessions", "positives": "purchases"}
    first = get_task("binary").business_sentences(_evaluation({"capture_top_20pct": 0.75}, {"capture_top_20pct": 0.7}), terms)
    assert first == ["Contacting the top 20% of sessions by score captures 75% of purchases, vs 70% with the baseline (peer)."]
    later = get_task("binary").business_sentences(
        _evaluation({"capture_top_20pct": 0.75}, {"capture_top_20pct": 0.7}, {"capture_top_20pct": 0.6}), terms)
    assert later == ["Contacting the top 20% of sessions by score captures 75% of purchases, vs 60% with the champion (v3) "
                     "and 70% with the baseline (peer)."]
    routed = get_task("multiclass").business_sentences(_evaluation({"accuracy": 0.9}, {"accuracy": 0.8}), {"rows": "messages", "positives": "intent"})
    assert routed == ["90.0% of messages are routed to the right intent."]
    shown = get_task("ranking").business_sentences(_evaluation({"precision_at_10": 0.4}, {"precision_at_10": 0.2}),
                                                   {"rows": "items", "positives": "interact with"})
    assert shown == ["Of the 10 items shown to a customer, 4.0 are ones they went on to interact with and 2.0 with the baseline (peer)."]


def test_the_readme_example_task_kind_is_one_module_that_registers_itself(tmp_path):
    """The README's "Add a task kind" example, dropped into a copy of components/, is registered
    by its presence alone and configures a use case's evaluate section."""
    import re
    import shutil
    import subprocess
    import sys

    readme = (ROOT / "README.md").read_text()
    example = re.search(r"```python\n# components/tasks/lead_scoring\.py\n(.*?)```", readme, flags=re.S)
    assert example is not None, "the README lost its task-kind example"
    shutil.copytree(ROOT / "components", tmp_path / "components", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "components" / "tasks" / "lead_scoring.py").write_text(example.group(1))
    probe = (
        "from components.tasks import TASKS, get_task\n"
        "from components.tasks.binary import BinaryEvaluate\n"
        "task = get_task('lead_scoring')\n"
        "names = task.metric_names(BinaryEvaluate(test_fraction=0.2, lift_fractions=(0.2,)))\n"
        "print(sorted(TASKS), 'capture_top_20pct' in names)\n"
        # a params.yaml section names the new kind with `task: lead_scoring`; the kind's defaults
        # are those of binary (in params.yaml: `lead_scoring: *binary_defaults`)
        "from pathlib import Path\n"
        "import yaml\n"
        "from components.config import load_params\n"
        "from components.use_cases import get_use_case\n"
        f"path = Path({str(ROOT / 'params.yaml')!r})\n"
        "binary = yaml.safe_load(path.read_text())['defaults']['task']['binary']\n"
        "params = load_params(path, {'defaults.task.lead_scoring': binary, 'use_cases.intent.task': 'lead_scoring'})\n"
        "print(get_use_case('intent', params).configure(params).name, get_use_case('intent', params).task.name)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True,
                         env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines() == [
        "['binary', 'clustering', 'coldstart', 'lead_scoring', 'multiclass', 'next_item', 'policy', 'ranking', 'retrieval', 'uplift'] True",
                                               "intent lead_scoring"]


@pytest.mark.parametrize("method", ["hash", "stratified"])
def test_a_binary_label_with_a_single_positive_row_is_refused_before_training(method):
    import pandas as pd

    from components.errors import DataValidationError
    from tests.conftest import intent_slice

    # given the real intent rows with one purchase left (the LightGBM baseline cannot stratify it)
    params = load_params(ROOT / "params.yaml", {"use_cases.intent.split.method": method})
    use_case = get_use_case("intent", params)
    frame = intent_slice(600)
    frame = pd.concat([frame[~frame["Revenue"]], frame[frame["Revenue"]].iloc[:1]])

    # when it is trained, then a clear error counts rows per split; nothing is built
    with pytest.raises(DataValidationError, match="data for 'intent' failed validation") as failure:
        use_case.task.train(use_case, use_case.configure(params), frame)
    assert "of the 2 'Revenue' classes" in str(failure.value)  # a split lacks the purchase class


def test_a_multiclass_test_class_without_training_rows_is_refused_before_training():
    import pandas as pd

    from components.errors import DataValidationError
    from tests.conftest import support_slice

    # given Banking77 rows where one intent has test rows but no training rows
    params = load_params(ROOT / "params.yaml")
    use_case = get_use_case("support", params)
    parts = support_slice(train_per_class=5, test_per_class=2)
    train, test = parts["train"].assign(split="train"), parts["test"].assign(split="test")
    gone = train["category"].iloc[0]
    frame = pd.concat([train[train["category"] != gone], test], ignore_index=True)

    # when it is trained, then the error counts the rows of the unseen class, never names it
    with pytest.raises(DataValidationError, match="2 test row\\(s\\) are of 1 'category' class\\(es\\) with no training row") as failure:
        use_case.task.train(use_case, use_case.configure(params), frame)
    assert gone not in str(failure.value)
