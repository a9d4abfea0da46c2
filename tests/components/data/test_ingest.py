"""Reading sources: shipped files, mirrors, URLs, and what bad input does."""

from __future__ import annotations

import hashlib
import http.server
import threading
from functools import partial
from pathlib import Path

import pytest

from components.config import DataParams, load_settings
from components.data.ingest import read_snapshot, read_source, resolve_source, write_snapshot
from components.errors import DataUnavailableError, DataValidationError
from tests.conftest import MIRROR, needs_mirror

ROOT = Path(__file__).resolve().parents[3]


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


def test_mirror_is_copied_into_the_source_path_when_it_is_absent(tmp_path):
    mirror = tmp_path / "mirror"
    (mirror / "intent").mkdir(parents=True)
    (mirror / "intent" / "file.csv").write_text("a\n1\n")
    repo = tmp_path / "repo"
    settings = load_settings(env={"FUNNEL_DATA_MIRROR": str(mirror)}, repo_root=repo_with_params(repo))
    data = DataParams(source="data/absent/file.csv", format="csv", mirror_subdir="intent/file.csv")
    assert resolve_source("intent", data, settings) == repo / "data" / "absent" / "file.csv"
    assert (repo / "data" / "absent" / "file.csv").read_text() == "a\n1\n"


def repo_with_params(repo: Path) -> Path:
    repo.mkdir(parents=True, exist_ok=True)
    (repo / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    return repo


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
    server.server_close()


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


# --- data that may not be redistributed: mirror or official URL, sha256-checked ---------------

SHARED = MIRROR


def mirror_params(name: str) -> DataParams:
    from components.config import load_params

    return load_params(ROOT / "params.yaml").use_cases[name].data


@needs_mirror
def test_frappe_is_read_from_the_mirror_checked_and_copied_out_of_git(tmp_path):
    repo = repo_with_params(tmp_path / "repo")
    settings = load_settings(env={"FUNNEL_DATA_MIRROR": str(SHARED)}, repo_root=repo)
    frame, source = read_source("ctr", mirror_params("ctr"), settings)
    # validation (57,722) and test (28,860) pooled; labels 1/-1 become 1/0; 10 fields as categories
    assert len(frame) == 86582
    assert frame["label"].value_counts().to_dict() == {0: 57983, 1: 28599}
    assert list(frame.columns)[1:] == ["user", "item", "daytime", "weekday", "isweekend", "homework",
                                       "cost", "weather", "country", "city"]
    assert frame.loc[0, "user"] == "266"
    assert frame.loc[0, "city"] == "5149"
    assert source == str(repo / "data" / "ctr")
    # the copy lives in a git-ignored folder: frappe must never be committed
    assert "/data/ctr/" in (ROOT / ".gitignore").read_text()


@needs_mirror
def test_movielens_is_read_from_the_mirror(tmp_path):
    repo = repo_with_params(tmp_path / "repo")
    settings = load_settings(env={"FUNNEL_DATA_MIRROR": str(SHARED)}, repo_root=repo)
    frame, _ = read_source("recommend", mirror_params("recommend"), settings)
    assert frame.shape == (100000, 4)
    assert frame["user_id"].nunique() == 943
    assert frame["item_id"].nunique() == 1682
    assert "/data/recommend/" in (ROOT / ".gitignore").read_text()


@needs_mirror
def test_a_corrupted_mirror_file_is_a_validation_error_naming_the_file(tmp_path):
    import shutil

    mirror = tmp_path / "mirror"
    shutil.copytree(SHARED / "frappe", mirror / "frappe")
    with (mirror / "frappe" / "frappe.test.libfm").open("a") as handle:
        handle.write("1 1:1 2:1\n")  # a truncated line appended: the checksum no longer matches
    repo = repo_with_params(tmp_path / "repo")
    settings = load_settings(env={"FUNNEL_DATA_MIRROR": str(mirror)}, repo_root=repo)
    with pytest.raises(DataValidationError, match=r"frappe\.test\.libfm: sha256 .* does not match"):
        read_source("ctr", mirror_params("ctr"), settings)
    assert not (repo / "data" / "ctr").exists()  # a bad copy is not cached


def test_no_mirror_and_no_network_says_what_to_set(tmp_path):
    repo = repo_with_params(tmp_path / "repo")
    settings = load_settings(env={}, repo_root=repo)
    data = DataParams(source="data/ctr", format="libfm", url="http://127.0.0.1:9/frappe",
                      mirror_subdir="frappe", files={"a.libfm": "0" * 64})
    with pytest.raises(DataUnavailableError, match="FUNNEL_DATA_MIRROR"):
        resolve_source("ctr", data, settings)


@needs_mirror
def test_files_are_fetched_from_a_base_url_and_checked(http_folder, tmp_path):
    import shutil

    www, base = http_folder
    shutil.copytree(SHARED / "frappe", www / "frappe")
    repo = repo_with_params(tmp_path / "repo")
    settings = load_settings(env={}, repo_root=repo)  # no mirror: the URL is the only way
    data = mirror_params("ctr")

    frame, source = read_source("ctr", data.model_copy(update={'url': f"{base}/frappe"}), settings)
    assert len(frame) == 86582
    assert source == str(repo / "data" / "ctr")
    # a server handing out a changed file is refused and nothing is kept
    shutil.rmtree(repo / "data" / "ctr")
    (www / "frappe" / "frappe.test.libfm").write_text("1 1:1\n")
    with pytest.raises(DataUnavailableError, match="does not match the expected"):
        read_source("ctr", data.model_copy(update={'url': f"{base}/frappe"}), settings)
    assert not (repo / "data" / "ctr" / "frappe.test.libfm").exists()


@needs_mirror
def test_movielens_zip_is_fetched_and_its_member_checked(http_folder, tmp_path):
    import zipfile

    www, base = http_folder
    with zipfile.ZipFile(www / "ml-100k.zip", "w") as archive:
        archive.write(SHARED / "movielens_100k" / "u.data", "ml-100k/u.data")
        archive.write(SHARED / "movielens_100k" / "u.item", "ml-100k/u.item")
    repo = repo_with_params(tmp_path / "repo")
    settings = load_settings(env={}, repo_root=repo)
    data = mirror_params("recommend").model_copy(update={'url': f"{base}/ml-100k.zip"})
    frame, _ = read_source("recommend", data, settings)
    assert len(frame) == 100000
    assert sorted(p.name for p in (repo / "data" / "recommend").iterdir()) == ["u.data"]
    # an archive whose u.data differs is refused
    (repo / "data" / "recommend" / "u.data").unlink()
    with zipfile.ZipFile(www / "ml-100k.zip", "w") as archive:
        archive.writestr("ml-100k/u.data", "1\t1\t5\t0\n")
    with pytest.raises(DataUnavailableError, match="u.data: sha256"):
        read_source("recommend", data, settings)


def test_criteo_style_log_is_read_by_config_alone(settings, tmp_path):
    log = tmp_path / "ads.tsv"
    # label, two integer counts, three categorical fields; empty fields are missing values
    log.write_text("1\t5\t\t68fd1e64\t80e26c9b\tfb936136\n0\t\t3\t68fd1e64\t\t7b4723c4\n")
    data = DataParams(source=str(log), format="csv", delimiter="\t",
                      columns=("clicked", "I1", "I2", "C1", "C2", "C3"))
    frame, _ = read_source("ctr", data, settings)
    assert frame["clicked"].tolist() == [1, 0]
    assert frame["I1"].isna().tolist() == [False, True]
    assert frame["C2"].isna().tolist() == [False, True]
    log.write_text("1\t5\t2\ta\tb\tc\textra\n")
    with pytest.raises(DataValidationError, match="could not be parsed"):
        read_source("ctr", data, settings)


def test_libfm_lines_with_the_wrong_number_of_fields_are_rejected(settings, tmp_path):
    bad = tmp_path / "bad.libfm"
    bad.write_text("1 3:1 4:1\n-1 3:1\n")
    data = DataParams(source=str(bad), format="libfm", columns=("label", "a", "b"))
    with pytest.raises(DataValidationError, match="line 2: expected a label and 2"):
        read_source("ctr", data, settings)
