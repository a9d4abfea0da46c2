"""Read a snapshot as a stream of row batches (parquet row groups), for data larger than memory.

A row's side (train / validation / test) is decided from the row alone (``splits.assign_sides``
under a ``hash`` or ``official`` split), so each batch is split on its own and every side is the
same as the in-memory split of the whole file; nothing ever holds all rows at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from components.data.splits import TEST, TRAIN, VALIDATION, assign_sides, row_keys, split_seed, unit_interval
from components.errors import ConfigError, DataUnavailableError

# split methods whose side of a row depends on that row only (a batch can be split on its own)
ROW_LOCAL_SPLITS = ("hash", "official")
SIDES = {"train": TRAIN, "validation": VALIDATION, "test": TEST}
# mixed into the seed of row samples, so a sample is independent of the split's own hash
SAMPLE_SALT = 0x5EED


def write_row_groups(frames: Iterable[pd.DataFrame], path: Path, row_group_rows: int) -> int:
    """Write ``frames`` (same columns and types) to one parquet file in row groups of at most
    ``row_group_rows`` rows; returns the rows written. Only one frame is held at a time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    writer, rows = None, 0
    try:
        for frame in frames:
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema, compression="snappy")
            writer.write_table(table, row_group_size=row_group_rows)
            rows += len(frame)
    finally:
        if writer is not None:
            writer.close()
    return rows


@dataclass(frozen=True)
class SnapshotStream:
    """A parquet snapshot read ``batch_rows`` rows at a time, split per row (``split``: a use
    case's ``SplitParams`` with a row-local method)."""

    path: Path
    batch_rows: int
    split: Any
    test_fraction: float
    validation_fraction: float
    seed: int
    label: str | None = None

    @property
    def rows(self) -> int:
        """All rows of the file (from its footer: nothing is read)."""
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(self.path).metadata.num_rows)

    @property
    def row_groups(self) -> int:
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(self.path).num_row_groups)

    def keyed_batches(self, side: str | None = None, order_seed: int | None = None,
                      ) -> Iterator[tuple[pd.DataFrame, np.ndarray]]:
        """(rows, their identity keys) per batch, only the rows of ``side`` when given. With
        ``order_seed`` the row groups are read in a seeded random order (a training epoch)."""
        import pyarrow.parquet as pq

        if side is not None and side not in SIDES:
            raise ValueError(f"side must be one of {sorted(SIDES)}; got {side!r}")
        parquet = pq.ParquetFile(self.path)
        groups = list(range(parquet.num_row_groups))
        if order_seed is not None:
            groups = [int(g) for g in np.random.default_rng(order_seed).permutation(groups)]
        for batch in parquet.iter_batches(batch_size=self.batch_rows, row_groups=groups):
            frame = batch.to_pandas()
            keys = row_keys(frame, self.split.key_columns)
            if side is None:
                yield frame, keys
                continue
            sides = assign_sides(frame, self.split, self.test_fraction, self.validation_fraction, self.seed,
                                 keys, self.label)
            chosen = sides == SIDES[side]
            if chosen.any():
                yield frame[chosen].reset_index(drop=True), keys[chosen]

    def batches(self, side: str | None = None, order_seed: int | None = None) -> Iterator[pd.DataFrame]:
        """The rows (of ``side``) batch by batch; see ``keyed_batches``."""
        for frame, _ in self.keyed_batches(side, order_seed):
            yield frame

    def reader(self, side: str) -> Callable[[], Iterator[pd.DataFrame]]:
        """A function that starts a new pass over ``side`` each time it is called."""
        return lambda: self.batches(side)

    def count_sides(self) -> dict[str, int]:
        """Rows per side, in one pass."""
        counts = dict.fromkeys(SIDES, 0)
        for frame, keys in self.keyed_batches():
            sides = assign_sides(frame, self.split, self.test_fraction, self.validation_fraction, self.seed,
                                 keys, self.label)
            for name, side in SIDES.items():
                counts[name] += int(np.count_nonzero(sides == side))
        return counts


def stream_use_case(path: Path, config: Any, batch_rows: int) -> SnapshotStream:
    """The snapshot at ``path`` as a stream split by the use case's ``split`` section.

    Raises:
        ConfigError: the split needs all rows at once (stratified, time, session_time).
        DataUnavailableError: there is no snapshot at ``path``.
    """
    split = config.params.split
    if split.method not in ROW_LOCAL_SPLITS:
        raise ConfigError(
            f"use_cases.{config.name}: train.streaming needs split.method {' or '.join(ROW_LOCAL_SPLITS)} (a row's "
            f"side decided by the row alone); split.method {split.method!r} ranks all rows at once. Change one of them.")
    if not Path(path).is_file():
        raise DataUnavailableError(f"no snapshot for {config.name!r} at {path}; run `funnel stage snapshot {config.name}` first.")
    return SnapshotStream(Path(path), batch_rows, split, config.evaluate.test_fraction,
                          config.train.validation_fraction, split_seed(config), config.label)


def sample_batches(batches: Iterable[tuple[pd.DataFrame, np.ndarray]], rows: int, seed: int) -> pd.DataFrame:
    """A seeded uniform sample of at most ``rows`` rows of a stream of (rows, keys) batches: the
    rows with the smallest hash of their key, so the sample does not depend on the batch order or
    size, and it is every row when there are fewer. Holds at most ``rows`` rows plus one batch."""
    kept: pd.DataFrame | None = None
    hashes = np.empty(0)
    for frame, keys in batches:
        u = unit_interval(keys, seed ^ SAMPLE_SALT)
        merged = frame if kept is None else pd.concat([kept, frame], ignore_index=True)
        hashes = np.concatenate([hashes, u])
        if len(merged) > rows:
            chosen = np.sort(np.argpartition(hashes, rows - 1)[:rows])
            merged, hashes = merged.iloc[chosen].reset_index(drop=True), hashes[chosen]
        kept = merged
    if kept is None:
        return pd.DataFrame()
    order = np.argsort(hashes, kind="stable")
    return kept.iloc[order].reset_index(drop=True)
