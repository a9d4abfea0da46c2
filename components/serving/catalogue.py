"""Items added after training, for served cold-start models: the use case's configured item table
(``data`` in params.yaml) is read when the model loads and again whenever its files change; each
item the registered model has never seen gets its content row from the featurizer the model
carries and is ranked beside the others, without retraining."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from components.config import DataParams, Settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ItemTable:
    """Where a use case's item table is and how to read it."""

    use_case: str
    path: Path
    data: DataParams

    def files(self) -> list[Path]:
        files = self.data.files
        return [self.path / name for name in files] if self.path.is_dir() and files else [self.path]

    def stamp(self) -> tuple:
        """Changes whenever a file of the table does (modification time and size per file)."""
        stamps: list[tuple] = []
        for file in self.files():
            try:
                stat = file.stat()
            except OSError:
                stamps.append((str(file), None))
                continue
            stamps.append((str(file), stat.st_mtime_ns, stat.st_size))
        return tuple(stamps)

    def read(self, item_column: str) -> pd.DataFrame:
        """The item table, indexed by each row's position in it: a format's own item file as it is
        (a repeated id is then an error of the table), else the first row of each item of the source
        (which repeats an item on every interaction)."""
        from components.data.readers import ITEM_TABLE_READERS, READERS

        data = self.data
        own = ITEM_TABLE_READERS.get(data.format)
        frame = (own or READERS[data.format])(self.path, data)
        if item_column not in frame.columns:
            from components.errors import ConfigError

            raise ConfigError(f"{self.use_case}: the item table at {self.path} has no item id column "
                              f"{item_column!r}; its columns are {sorted(map(str, frame.columns))}")
        return frame if own is not None else frame.drop_duplicates(item_column)


def configured_item_table(settings: Settings, use_case: str) -> ItemTable:
    """The item table ``use_cases.<use_case>.data`` in params.yaml names (relative to the repository)."""
    from components.config import load_params

    data = load_params(settings.params_path).use_cases[use_case].data
    path = Path(data.source)
    return ItemTable(use_case, path if path.is_absolute() else settings.repo_root / path, data)


@dataclass(frozen=True)
class ServedCatalogue:
    """A served catalogue model: the registered Keras model, the one served (with the table's new
    items) and the table stamp it was built from."""

    registered: object
    table: ItemTable
    stamp: tuple
    added: int


def with_table_items(registered, table: ItemTable) -> tuple[object, ServedCatalogue]:
    """``registered`` (a catalogue serving model) plus every item of ``table`` it does not rank yet.

    Raises:
        ConfigError: a new item's row cannot become a content row (names the column, never values).
        DataValidationError / DataUnavailableError / OSError: the table cannot be read.
    """
    from components.models.coldstart import ItemFeaturizer, check_item_rows, featurize_items
    from components.models.coldstart_layers import build_serving, catalogue_of

    stamp = table.stamp()
    catalogue = catalogue_of(registered)
    if catalogue.featurizer is None:
        return registered, ServedCatalogue(registered, table, stamp, 0)
    featurizer = ItemFeaturizer.from_dict(catalogue.featurizer)
    rows = table.read(featurizer.item)
    new = rows[~rows[featurizer.item].isin(catalogue.item_ids)]  # index: the row's position in the table
    if new.empty:
        return registered, ServedCatalogue(registered, table, stamp, 0)
    check_item_rows(new, featurizer, f"{table.use_case}: the item table at {table.path} ({len(new)} new item(s))")
    ids = pd.to_numeric(new[featurizer.item], errors="coerce")
    if ids.isna().any() or not np.all(ids == np.round(ids)):
        from components.errors import ConfigError

        raise ConfigError(f"{table.use_case}: column {featurizer.item!r} of the item table at {table.path} holds "
                          f"{int((ids.isna() | (ids != np.round(ids))).sum())} id(s) that are not whole numbers; "
                          "item ids are integers")
    content = featurize_items(new, featurizer)
    served = build_serving(catalogue.with_items(ids.to_numpy("int64"), content))
    logger.info("%s: %d item(s) of the item table were not in the registered model; scored from their attributes",
                table.use_case, len(new))
    return served, ServedCatalogue(registered, table, stamp, len(new))


def serve_catalogue(settings: Settings, use_case: str, registered, previous: ServedCatalogue | None = None):
    """(the Keras model to serve, its ServedCatalogue): ``registered`` with the configured item
    table's new items; when the table cannot be read or has a bad new row, the error is logged
    (it names the file or the column) and the registered items (or ``previous``'s model, None
    then) are served until the table changes again."""
    table = previous.table if previous is not None else None
    try:
        table = table or configured_item_table(settings, use_case)
        return with_table_items(registered, table)
    except Exception as exc:  # noqa: BLE001 - a bad item table must never take the served model down
        from components.errors import describe_failure

        # a library's message (a CSV parser's, a conversion's) may quote the row it choked on
        logger.warning("%s: new items not added from the item table (%s); %s", use_case, describe_failure(exc),
                       "serving the items it had" if previous else "serving the registered items")
        stamp = table.stamp() if table is not None else ()
        if table is None:
            return registered, None
        return (None if previous else registered), ServedCatalogue(registered, table, stamp, 0)
