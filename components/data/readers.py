"""File formats: each reader turns a use case's local source (a file or a folder of listed files)
into one DataFrame; ``READERS`` maps ``data.format`` in params.yaml to its reader."""

from __future__ import annotations

import csv
import warnings
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from components.config import DataParams
from components.errors import DataUnavailableError, DataValidationError


def _source_files(path: Path, data: DataParams) -> list[Path]:
    """The files to read: the listed ``files`` of a folder, or the path itself."""
    if path.is_dir() and data.files:
        return [path / name for name in data.files]
    if path.is_dir():
        raise DataUnavailableError(f"{path} is a folder; list the files to read under data.files in params.yaml")
    return [path]


def read_csv(path: Path, data: DataParams) -> pd.DataFrame:
    """Delimited text: with a header row, or header-less with ``columns`` named in params.yaml.

    Header-less files are Criteo-style ad logs too (label, integer and categorical columns);
    empty fields become missing values.
    """
    frames = []
    for file in _source_files(path, data):
        if data.columns:
            # index_col=False + warnings as errors: a line with too many fields is a parse error,
            # never a silently shifted index or dropped field
            with warnings.catch_warnings():
                warnings.simplefilter("error", pd.errors.ParserWarning)
                try:
                    frame = pd.read_csv(file, sep=data.delimiter, header=None, names=list(data.columns),
                                        index_col=False, dtype=dict(data.dtypes or {}))
                except pd.errors.ParserWarning as exc:
                    raise ValueError(f"{file.name}: more fields than the {len(data.columns)} columns named") from exc
        else:
            frame = pd.read_csv(file, sep=data.delimiter, dtype=dict(data.dtypes or {}))
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def read_libfm(path: Path, data: DataParams) -> pd.DataFrame:
    """libFM lines ``label idx:value ...`` with one one-hot index per field, fields in order.

    ``columns`` names the label and then each field; a field's value is its feature index (as a
    string category). Labels > 0 are positives (1), the rest negatives (0). Listed files are pooled
    in the order given.
    """
    if not data.columns or len(data.columns) < 2:
        raise DataValidationError("libfm", ["data.columns must name the label and each field for format libfm"])
    label, *fields = data.columns
    rows: list[list[str]] = []
    for file in _source_files(path, data):
        with file.open(encoding="ascii") as handle:
            for number, line in enumerate(handle, start=1):
                tokens = line.split()
                if not tokens:
                    continue
                if len(tokens) != len(fields) + 1 or not all(":" in t for t in tokens[1:]):
                    raise ValueError(
                        f"{file.name} line {number}: expected a label and {len(fields)} idx:value pairs, "
                        f"got {len(tokens)} tokens"
                    )
                rows.append([tokens[0], *(t.split(":", 1)[0] for t in tokens[1:])])
    frame = pd.DataFrame(rows, columns=[label, *fields])
    frame[label] = (pd.to_numeric(frame[label]) > 0).astype("int64")
    return frame


def read_sentences(path: Path, data: DataParams) -> pd.DataFrame:
    """UCI Sentiment Labelled Sentences: ``<source>_labelled.txt`` files of ``text<TAB>label``."""
    files = sorted(path.glob("*_labelled.txt")) if path.is_dir() else [path]
    if not files:
        raise DataUnavailableError(f"{path}: no *_labelled.txt files found")
    frames = []
    for file in files:
        # QUOTE_NONE: the imdb file has stray quote characters; with quoting on, 252 rows vanish.
        frame = pd.read_csv(
            file, sep=data.delimiter, header=None, names=["text", "label"],
            quoting=csv.QUOTE_NONE, dtype={"text": "string"}, keep_default_na=False,
        )
        frame["text"] = frame["text"].astype("string").str.strip()
        frame["source"] = file.name.split("_", 1)[0].removesuffix("_cells")
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def read_official_splits(path: Path, data: DataParams) -> pd.DataFrame:
    """A folder holding ``train.csv`` and ``test.csv``; a ``split`` column keeps the official split."""
    frames = []
    for split in ("train", "test"):
        file = path / f"{split}.csv"
        if not file.is_file():
            raise DataUnavailableError(f"{path}: {file.name} is missing (expected train.csv and test.csv)")
        frames.append(pd.read_csv(file, sep=data.delimiter).assign(split=split))
    return pd.concat(frames, ignore_index=True)


def read_creditcard(path: Path, data: DataParams) -> pd.DataFrame:
    """The ULB credit-card samples: all-frauds file + random sample, shared and duplicate rows removed.

    The two files print V1 with different precision, so rows are matched on (Time, V1 rounded to
    6 decimals, Amount).
    """
    files = sorted(path.glob("creditcard_*.csv")) if path.is_dir() else [path]
    if not files:
        raise DataUnavailableError(f"{path}: no creditcard_*.csv files found")
    frames = []
    for file in files:
        frame = pd.read_csv(file, sep=data.delimiter)
        frame = frame.drop(columns=[c for c in frame.columns if c.startswith("Unnamed") or c == ""])
        frames.append(frame.assign(sample=file.stem.removeprefix("creditcard_")))
    pooled = pd.concat(frames, ignore_index=True)
    key = pd.DataFrame({"Time": pooled["Time"], "V1": pooled["V1"].round(6), "Amount": pooled["Amount"]})
    return pooled.loc[~key.duplicated()].reset_index(drop=True)


def read_stackfaq(path: Path, data: DataParams) -> pd.DataFrame:
    """StackFAQ's XML (``<qapair>``: ``<rephr>`` paraphrases, one ``<question>``, ``<answer>``s):
    one row per question or paraphrase, with its thread id (``faq001``, file order), ``role``
    (question | paraphrase) and the thread's first answer. The ``*`` placeholder paraphrases are dropped."""
    import xml.etree.ElementTree as ElementTree

    def clean(node) -> str:
        return " ".join((node.text or "").split())

    rows: list[dict[str, str]] = []
    for file in _source_files(path, data):
        try:
            pairs = ElementTree.parse(file).getroot().findall("qapair")
        except ElementTree.ParseError as exc:  # its message gives a line and column, never text
            raise ValueError(f"{file.name}: not well-formed XML ({exc})") from None
        if not pairs:
            raise ValueError(f"{file.name}: no <qapair> elements")
        for number, pair in enumerate(pairs, start=len({r["thread"] for r in rows}) + 1):
            thread, question = f"faq{number:03d}", pair.find("question")
            if question is None or not clean(question):
                raise ValueError(f"{file.name}: <qapair> number {number} has no <question>")
            answers = [clean(a) for a in pair.findall("answer") if clean(a)]
            texts = [("question", clean(question))] + [("paraphrase", clean(r)) for r in pair.findall("rephr")]
            rows += [{"thread": thread, "role": role, "text": text, "answer": answers[0] if answers else ""}
                     for role, text in texts if text and text != "*"]
    return pd.DataFrame(rows, columns=["thread", "role", "text", "answer"])


def read_review_topics(path: Path, data: DataParams) -> pd.DataFrame:
    """Reviews to cluster plus a labelled set, one frame: each listed ``.parquet*`` file is the
    Women's E-Commerce Clothing Reviews table (``source`` reviews; ``doc_id`` review:<row>, its
    Review Text, Rating, Department Name; reviews without text dropped), each ``.xml`` file SemEval
    ABSA (``source`` labelled; ``doc_id`` absa:<sentence id>; ``label``: the one entity of the
    sentence's negative opinions, "" when it has none or several)."""
    import xml.etree.ElementTree as ElementTree

    frames = []
    for file in _source_files(path, data):
        if file.suffix == ".xml":
            try:
                sentences = ElementTree.parse(file).getroot().iter("sentence")
            except ElementTree.ParseError as exc:
                raise ValueError(f"{file.name}: not well-formed XML ({exc})") from None
            rows = []
            for sentence in sentences:
                entities = {o.get("category", "").split("#")[0] for o in sentence.iterfind("./Opinions/Opinion")
                            if o.get("polarity") == "negative"}
                text = " ".join((sentence.findtext("text") or "").split())
                if text:
                    rows.append({"doc_id": f"absa:{sentence.get('id')}", "text": text,
                                 "label": entities.pop() if len(entities) == 1 else ""})
            frames.append(pd.DataFrame(rows, columns=["doc_id", "text", "label"]).assign(source="labelled"))
        else:
            reviews = pd.read_parquet(file)
            reviews = reviews[reviews["Review Text"].notna()]
            frames.append(pd.DataFrame({
                "doc_id": "review:" + reviews.index.astype(str), "text": reviews["Review Text"].astype(str),
                "rating": reviews["Rating"].astype("float64"),
                "department": reviews["Department Name"].fillna("").astype(str), "source": "reviews"}))
    frame = pd.concat(frames, ignore_index=True)
    for column, empty in (("label", ""), ("department", ""), ("rating", float("nan"))):
        frame[column] = frame[column].fillna(empty) if column in frame else empty
    return frame[["doc_id", "source", "text", "rating", "department", "label"]]


def read_open_bandit(path: Path, data: DataParams) -> pd.DataFrame:
    """Open Bandit Dataset logs, one frame: each listed ``<policy>/<campaign>/<campaign>.csv`` file
    is one logging policy's impressions (``policy``: the file's first folder, e.g. random, bts;
    ``impression_id`` <policy>:<row>), and the listed ``item_context.csv`` gives every row its
    item's features. The per-item user affinity columns are left out (80 columns a request would
    have to send)."""
    logs, items = [], None
    for file in _source_files(path, data):
        if file.name == "item_context.csv":
            items = pd.read_csv(file, index_col=0)
            continue
        frame = pd.read_csv(file, index_col=0)
        parts = file.relative_to(path).parts if file != path else ()
        policy = parts[0] if len(parts) > 1 else "logged"
        frame = frame[[c for c in frame.columns if not c.startswith("user-item_affinity")]]
        logs.append(frame.assign(policy=policy, impression_id=policy + ":" + frame.index.astype(str)))
    if items is None or not logs:
        raise DataValidationError("open_bandit", ["data.files must list item_context.csv and at least one policy's log"])
    frame = pd.concat(logs, ignore_index=True).merge(items, on="item_id", how="left", validate="many_to_one")
    users = [c for c in frame.columns if c.startswith("user_feature_")]
    features = [c for c in items.columns if c != "item_id"]
    return frame[["impression_id", "policy", "timestamp", "position", "item_id", "click", "propensity_score",
                  *users, *features]]


def _genre_column(name: str) -> str:
    return "genre_" + "".join(c if c.isalnum() else "_" for c in name.lower()).strip("_")


def _movielens_files(path: Path, data: DataParams, needed: tuple[str, ...]) -> dict[str, Path]:
    files = {file.name: file for file in _source_files(path, data)}
    missing = [name for name in needed if name not in files]
    if missing or not data.columns:
        raise DataValidationError("movielens_items", [f"data.files must list {', '.join(needed)} (missing: "
                                                      f"{missing}) and data.columns name u.data's columns"])
    return files


def read_movielens_item_table(path: Path, data: DataParams) -> pd.DataFrame:
    """MovieLens' item table (``u.item``, latin-1, with ``u.genre``'s names), one row per movie:
    the id (named like u.data's second column), the title without its trailing "(year)", the
    release year (NaN when unknown) and one 0/1 column per genre (``genre_<name>``)."""
    files = _movielens_files(path, data, ("u.item", "u.genre"))
    genres = pd.read_csv(files["u.genre"], sep="|", header=None, names=["genre", "index"], encoding="latin-1")
    genre_columns = [_genre_column(g) for g in genres.sort_values("index")["genre"]]
    items = pd.read_csv(files["u.item"], sep="|", header=None, encoding="latin-1", index_col=False,
                        names=["item_id", "raw_title", "release_date", "video_release", "url", *genre_columns])
    items["title"] = items["raw_title"].fillna("").str.replace(r"\s*\(\d{4}\)\s*$", "", regex=True)
    items["year"] = pd.to_datetime(items["release_date"], format="%d-%b-%Y", errors="coerce").dt.year.astype(float)
    item_key = list(data.columns or ())[1]
    return items.rename(columns={"item_id": item_key})[[item_key, "title", "year", *genre_columns]]


def read_movielens_items(path: Path, data: DataParams) -> pd.DataFrame:
    """MovieLens 100K interactions with their item's attributes, one frame: ``u.data`` (columns
    named by ``data.columns``), each row joined with its movie's ``u.item`` entry
    (``read_movielens_item_table``)."""
    files = _movielens_files(path, data, ("u.data", "u.item", "u.genre"))
    columns = list(data.columns or ())
    ratings = pd.read_csv(files["u.data"], sep="\t", header=None, names=columns, index_col=False)
    items = read_movielens_item_table(path, data)
    return ratings.merge(items, on=columns[1], how="left", validate="many_to_one")


READERS: dict[str, Callable[[Path, DataParams], pd.DataFrame]] = {
    "csv": read_csv,
    "libfm": read_libfm,
    "sentences": read_sentences,
    "official_splits": read_official_splits,
    "creditcard": read_creditcard,
    "stackfaq": read_stackfaq,
    "review_topics": read_review_topics,
    "open_bandit": read_open_bandit,
    "movielens_items": read_movielens_items,
}

# formats whose item attributes live in a file of their own: read just that table (serving reads
# it to score items added after training); other formats' item table is their whole source
ITEM_TABLE_READERS: dict[str, Callable[[Path, DataParams], pd.DataFrame]] = {
    "movielens_items": read_movielens_item_table,
}
