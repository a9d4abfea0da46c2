"""Reading sources: shipped files, mirrors, URLs, and what bad input does."""

from __future__ import annotations

import hashlib
import http.server
import threading
from functools import partial
from pathlib import Path

import pytest

from components.config import DataParams, load_settings
from components.errors import DataUnavailableError, DataValidationError
from components.ingest import read_snapshot, read_source, resolve_source, write_snapshot

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def settings():
    return load_settings(env={}, repo_root=ROOT)


def test_sentences_keep_every_row_of_every_source(settings):
    # imdb has stray quote characters: read with quoting on, 252 rows vanish
    frame, _ = read_source("sentiment", DataParams(source="data/sentiment", format="sentences", delimiter="\t"), settings)
    assert frame["source"].value_counts().to_dict() == {"amazon": 1000, "imdb": 1000, "yelp": 1000}
    assert set(frame["label"]) == {0, 1}


def test_intent_csv_reads_all_rows(settings):
    frame, source = read_source("intent", DataParams(source="data/intent/online_shoppers_intention.csv", format="csv"), settings)
    assert frame.shape == (12330, 18)
    assert source.endswith("online_shoppers_intention.csv")


def test_empty_file_is_a_validation_error(settings, tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataValidationError, match="is empty"):
        read_source("intent", DataParams(source=str(empty), format="csv"), settings)


def test_missing_source_says_where_it_looked(settings):
    with pytest.raises(DataUnavailableError, match="FUNNEL_DATA_MIRROR"):
        resolve_source("intent", DataParams(source="data/nowhere.csv", format="csv", mirror_subdir="x"), settings)


def test_mirror_is_used_when_the_source_is_absent(tmp_path):
    mirror = tmp_path / "mirror"
    (mirror / "intent").mkdir(parents=True)
    (mirror / "intent" / "file.csv").write_text("a\n1\n")
    settings = load_settings(env={"FUNNEL_DATA_MIRROR": str(mirror)}, repo_root=ROOT)
    data = DataParams(source="data/absent/file.csv", format="csv", mirror_subdir="intent/file.csv")
    assert resolve_source("intent", data, settings) == mirror / "intent" / "file.csv"


@pytest.fixture
def http_folder(tmp_path):
    """A real HTTP server on loopback serving ``tmp_path/www``."""
    www = tmp_path / "www"
    www.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield www, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_url_is_fetched_and_checked(http_folder, tmp_path):
    www, base = http_folder
    body = b"a,b\n1,2\n"
    (www / "d.csv").write_bytes(body)
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    settings = load_settings(env={}, repo_root=repo)
    good = DataParams(source=f"{base}/d.csv", format="csv", sha256=hashlib.sha256(body).hexdigest())
    frame, _ = read_source("intent", good, settings)
    assert frame.to_dict("list") == {"a": [1], "b": [2]}
    (repo / "data" / "downloads" / "intent" / "d.csv").unlink()
    bad = DataParams(source=f"{base}/d.csv", format="csv", sha256="0" * 64)
    with pytest.raises(DataUnavailableError, match="does not match the expected"):
        read_source("intent", bad, settings)


def test_snapshot_bytes_are_identical_for_identical_data(settings, tmp_path):
    frame, source = read_source("intent", DataParams(source="data/intent/online_shoppers_intention.csv", format="csv"), settings)
    first = write_snapshot("intent", frame, source, tmp_path / "a").path.read_bytes()
    second = write_snapshot("intent", frame.copy(), source, tmp_path / "b").path.read_bytes()
    assert first == second
    assert read_snapshot("intent", tmp_path / "a").frame.equals(frame)


def test_creditcard_files_are_pooled_without_shared_or_duplicate_rows(settings):
    frame, _ = read_source("fraud", DataParams(source="data/fraud", format="creditcard"), settings)
    # 1,722 + 5,696 rows, less 36 shared and 19 duplicate frauds
    assert len(frame) == 7363
    assert int(frame["Class"].sum()) == 473
    assert not any(c.startswith("Unnamed") for c in frame.columns)


def test_official_splits_are_kept(settings):
    frame, _ = read_source("support", DataParams(source="data/support", format="official_splits"), settings)
    assert frame["split"].value_counts().to_dict() == {"train": 10003, "test": 3080}
    assert frame["category"].nunique() == 77


def test_a_folder_without_test_csv_is_a_clear_error(settings, tmp_path):
    (tmp_path / "train.csv").write_text("text,category\nhi,greeting\n")
    with pytest.raises(DataUnavailableError, match=r"test\.csv is missing"):
        read_source("support", DataParams(source=str(tmp_path), format="official_splits"), settings)
