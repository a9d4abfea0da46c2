"""The snapshot stream: bounded row groups, the in-memory split per batch, every row once, counts
equal to the in-memory counts (real frappe rows)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components.config import load_params
from components.data.ingest import write_snapshot
from components.data.splits import row_keys, split_use_case
from components.data.stream import sample_batches, stream_use_case, write_row_groups
from components.errors import ConfigError, DataUnavailableError
from components.use_cases import get_use_case
from tests.conftest import ROOT, frappe_slice, needs_mirror

pytestmark = needs_mirror


@pytest.fixture(scope="module")
def ctr_config():
    return get_use_case("ctr").configure(load_params(ROOT / "params.yaml"))


@pytest.fixture(scope="module")
def frappe_file(tmp_path_factory) -> tuple[pd.DataFrame, Path]:
    """3,000 real frappe rows in row groups of 700, written 1,000 rows at a time."""
    frame = frappe_slice(3000).reset_index(drop=True)
    path = tmp_path_factory.mktemp("stream") / "snapshot.parquet"
    write_row_groups((frame.iloc[i:i + 1000] for i in range(0, len(frame), 1000)), path, 700)
    return frame, path


def group_sizes(path: Path) -> list[int]:
    import pyarrow.parquet as pq

    metadata = pq.ParquetFile(path).metadata
    return [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]


def test_row_groups_are_bounded_when_written_in_pieces_and_as_a_snapshot(frappe_file, tmp_path):
    frame, path = frappe_file
    assert max(group_sizes(path)) <= 700
    assert sum(group_sizes(path)) == len(frame)
    snapshot = write_snapshot("ctr", frame, "test", tmp_path, row_group_rows=500)
    assert group_sizes(snapshot.path) == [500] * 6


def test_each_batch_is_split_as_the_whole_file_is_in_memory(frappe_file, ctr_config):
    _, path = frappe_file
    stream = stream_use_case(path, ctr_config, batch_rows=400)
    in_memory = split_use_case(pd.read_parquet(path), ctr_config)
    for side in ("train", "validation", "test"):
        streamed = pd.concat(list(stream.batches(side)), ignore_index=True)
        pd.testing.assert_frame_equal(streamed, getattr(in_memory, side))
    assert stream.count_sides() == in_memory.sizes


def test_an_epoch_sees_every_row_exactly_once_in_a_seeded_order(frappe_file, ctr_config):
    frame, path = frappe_file
    stream = stream_use_case(path, ctr_config, batch_rows=256)
    all_keys = np.sort(row_keys(frame))
    epochs = [np.concatenate([keys for _, keys in stream.keyed_batches(order_seed=seed)]) for seed in (1, 2, 1)]
    for keys in epochs:
        np.testing.assert_array_equal(np.sort(keys), all_keys)  # every row once (duplicates as often as they occur)
    assert not np.array_equal(epochs[0], epochs[1])  # another epoch, another order of row groups
    np.testing.assert_array_equal(epochs[0], epochs[2])  # the same seed, the same order
    assert max(len(batch) for batch in stream.batches()) <= 256


def test_a_sample_does_not_depend_on_batches_and_is_everything_when_small(frappe_file, ctr_config):
    frame, path = frappe_file
    small, large = (stream_use_case(path, ctr_config, batch_rows=rows) for rows in (128, 1000))
    one = sample_batches(small.keyed_batches("train"), 500, seed=3)
    other = sample_batches(large.keyed_batches("train", order_seed=9), 500, seed=3)
    assert len(one) == 500
    pd.testing.assert_frame_equal(one, other)
    everything = sample_batches(small.keyed_batches("test"), 10_000, seed=3)
    assert len(everything) == small.count_sides()["test"]


def test_a_split_that_ranks_all_rows_or_a_missing_file_is_refused(frappe_file, ctr_config, tmp_path):
    _, path = frappe_file
    stratified = ctr_config.params.model_copy(update={"split": ctr_config.params.split.model_copy(update={"method": "stratified"})})
    from dataclasses import replace

    with pytest.raises(ConfigError, match="train.streaming needs split.method hash or official"):
        stream_use_case(path, replace(ctr_config, params=stratified), 100)
    with pytest.raises(DataUnavailableError, match="no snapshot for 'ctr'"):
        stream_use_case(tmp_path / "missing.parquet", ctr_config, 100)


def test_counts_over_batches_equal_the_counts_over_the_frame(frappe_file, ctr_config):
    """One pass of counting over row groups gives the in-memory counts: categories, the hashed
    co-occurrence table and the leave-one-out features' moments."""
    from components.models.ctr import count_statistics, expand_crosses
    from components.models.layers import CooccurrenceCounts

    frame, path = frappe_file
    features, params = ctr_config.features, ctr_config.train.model_copy(update={"count_bins": 4096})
    names = list(features.categorical)
    counter = CooccurrenceCounts([[names.index(f) for f in c] for c in expand_crosses(features)], params.count_bins)
    counter.build(None)
    stream = stream_use_case(path, ctr_config, batch_rows=300)
    train = split_use_case(pd.read_parquet(path), ctr_config).train
    streamed = count_statistics(stream.reader("train"), features, params, 42, counter)
    whole = count_statistics(lambda: iter([train]), features, params, 42, counter)
    assert streamed.rows == whole.rows == len(train)
    assert streamed.category_counts == whole.category_counts
    assert streamed.category_counts["user"] == train["user"].astype(str).value_counts().to_dict()
    np.testing.assert_array_equal(streamed.cooccurrence, whole.cooccurrence)
    assert streamed.cooccurrence.sum() == len(train) * len(counter.crosses)
    np.testing.assert_allclose(streamed.cross_mean, whole.cross_mean, rtol=1e-9)
    np.testing.assert_allclose(streamed.cross_variance, whole.cross_variance, rtol=1e-7)
    # the layer counted in memory (as before streaming) gives the same table
    counter.adapt([train[f].astype(str).astype(object).to_numpy().reshape(-1, 1) for f in names])
    np.testing.assert_array_equal(counter.table.numpy(), streamed.cooccurrence.astype("float32"))


def test_count_field_moments_over_batches_match_the_whole_column():
    from components.models.ctr import CtrFeatures, CtrTrain, count_statistics, log_counts, raw_counts
    from components.models.layers import nan_medians

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"I1": np.where(rng.random(900) < 0.3, np.nan, rng.integers(0, 500, 900)),
                          "I2": rng.integers(0, 5, 900).astype(float), "C1": rng.choice(["a", "b"], 900)})
    features = CtrFeatures(categorical=("C1",), numeric=("I1", "I2"), slices=())
    params = CtrTrain(embedding_dim=2, cross_layers=0, hidden_units=(), dropout=0.0, embedding_l2=0.0,
                      learning_rate=0.01, batch_size=64, max_epochs=1, early_stopping_patience=1, validation_fraction=0.2)
    stats = count_statistics(lambda: (frame.iloc[i:i + 250] for i in range(0, 900, 250)), features, params, 1,
                             median_sample_rows=900)
    raw = raw_counts(frame, features.numeric)
    np.testing.assert_allclose(stats.count_mean, np.nanmean(log_counts(raw), axis=0), rtol=1e-9)
    np.testing.assert_allclose(stats.count_variance, np.nanvar(log_counts(raw), axis=0), rtol=1e-9)
    assert stats.medians == nan_medians(raw)
    assert stats.flagged == [0]
