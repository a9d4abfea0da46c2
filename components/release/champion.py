"""What the champion trained on: the identity keys of its training rows, from its DVC snapshot.

The gate compares the challenger with the champion only on test rows the champion never saw. The
champion's version carries its snapshot md5 and its split settings (``split.spec``); its
snapshot is read back from DVC and split again by those settings, so the keys of its train and
validation rows are known exactly, whatever the current split settings are.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from components.config import Settings, SplitParams
from components.data import versioning
from components.data.splits import SPLIT_TAG, TEST, assign_sides, row_keys
from components.errors import ConfigError
from components.evaluation.report import ChampionScorer
from components.models.encoder import share_embeddings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SeenRows:
    """Identity keys of the rows a champion trained on (None: unknown) and how they were found."""

    keys: np.ndarray | None
    note: str


def champion_seen_rows(settings: Settings, tags: dict[str, str], key_columns: tuple[str, ...]) -> SeenRows:
    """The champion's training rows (train + validation) as identity keys under today's
    ``key_columns``; a champion registered before split settings were recorded counts every row
    of its snapshot as seen (the comparison then uses only rows newer than its data)."""
    md5 = tags.get("data_md5", "")
    snapshot = versioning.read_cached_snapshot(settings.repo_root, md5, settings.dvc_remote) if md5 else None
    if snapshot is None:
        return SeenRows(None, f"the champion's snapshot {md5 or '(no data_md5 tag)'} is in neither the DVC cache nor the remote")
    try:
        keys = row_keys(snapshot, key_columns)
    except ConfigError as exc:  # today's key columns are not in the old data (the message names columns only)
        return SeenRows(None, f"the champion's snapshot has no row keys under today's split.key_columns ({exc})")
    recorded = tags.get(SPLIT_TAG)
    if not recorded:
        return SeenRows(keys, "the champion predates recorded split settings: every row of its snapshot counts as seen")
    spec = json.loads(recorded)
    split = SplitParams(**{k: spec[k] for k in SplitParams.model_fields if k in spec})
    same_keys = tuple(split.key_columns) == tuple(key_columns)
    sides = assign_sides(snapshot, split, spec["test_fraction"], spec["validation_fraction"], spec["seed"],
                         keys if same_keys else None, spec.get("label"))
    return SeenRows(keys[sides != TEST], f"the champion's train and validation rows ({int(np.sum(sides != TEST))} of "
                                         f"{len(snapshot)} in snapshot {md5[:8]}, split {split.method})")


def load_champion(settings: Settings, config: Any, alias: str) -> ChampionScorer | None:
    """The serving ``@alias`` as a scorer of raw rows, with the identity keys of the rows it trained
    on (so the gate compares on rows it never saw); None when there is no champion yet."""
    from components.release import registry

    found = registry.get_alias_version(settings, config.name, alias)
    if found is None:
        return None
    from components.models.scorer import RowScorer

    version, tags = str(found.version), dict(found.tags)
    # the champion's own features, taken from this run's (transformed) rows: its serving-time
    # transforms (which read raw rows) are not applied again
    scorer = RowScorer(registry.load_version_model(config.name, version).get_raw_model())
    seen = champion_seen_rows(settings, tags, config.params.split.key_columns)
    recorded = dict(registry.get_run(settings, found.run_id).data.metrics) if found.run_id else {}
    return ChampionScorer(version, lambda rows: registry.score_frame(scorer, rows), registry.decision_threshold(tags),
                          seen_keys=seen.keys, seen_note=seen.note,
                          # an optional input (e.g. click times) is no column the data must hold
                          input_columns=tuple(n for n in scorer.spec if n not in scorer.optional),
                          recorded_metrics=recorded, model=scorer.model)


def schema_change(champion: ChampionScorer | None, columns) -> str | None:
    """One line when the champion cannot score rows with these ``columns``: which it expects and
    which are missing (column names only); None when it can, or there is no champion."""
    if champion is None or not champion.input_columns:
        return None
    missing = [c for c in champion.input_columns if c not in set(columns)]
    if not missing:
        return None

    def names(items: list[str]) -> str:
        return ", ".join(items[:15]) + (f" and {len(items) - 15} more" if len(items) > 15 else "")

    return (f"schema change: champion v{champion.version} takes {len(champion.input_columns)} columns; "
            f"the new data lacks {len(missing)}: {names(missing)}")


def evaluate_with_champion(use_case: Any, config: Any, trained: Any, plots_dir, champion: ChampionScorer | None):
    """The task's evaluation of ``trained`` against the champion. When the champion cannot score
    this data (its input columns are gone), it is left out of the scoring and the evaluation
    carries the one-line ``schema_change`` the gate decides on (``gate.on_schema_change``)."""
    from dataclasses import replace

    changed = schema_change(champion, trained.splits.test.columns)
    if changed:
        logger.warning("%s: %s", config.name, changed)
    if not changed and champion is not None and champion.model is not None:
        # the same frozen sentence encoder in both: the champion reads the challenger's vectors
        share_embeddings(champion.model, trained.model)
    evaluation = use_case.task.evaluate(use_case, config, trained, plots_dir, None if changed else champion)
    if changed and champion is not None:
        evaluation = replace(evaluation, champion_version=champion.version, champion_error=changed, schema_change=changed)
    return evaluation
