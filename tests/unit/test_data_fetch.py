"""`bench data fetch|verify|info` against fixtures: a loopback HTTP server, fake clients, real files.

Nothing here uses the network. The URL path is exercised with http.server on 127.0.0.1 serving
zips built from the real files; kagglehub and datasets are replaced by fakes in sys.modules
that hand back what the real clients return (a folder of CSVs; splits with select()).
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import io
import shutil
import threading
import types
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from bench.cli import main
from bench.data.datasets import DATASETS, POLARITY_COLUMNS, check_file, dataset, selected
from bench.data.fetch import polarity_subset

AI4I = "ai4i2020/ai4i2020.csv"


UNSW_TEST = "unsw_nb15/UNSW_NB15_testing-set.csv.gz"


CELLS = "amazon_reviews/amazon_cells_labelled.txt"


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """An empty data directory that the commands write into."""
    root = tmp_path / "cache"
    monkeypatch.setenv("BENCH_DATA_DIR", str(root))
    return root


@pytest.fixture
def served(tmp_path):
    """A loopback HTTP server over tmp_path/www; yields (folder, base URL)."""
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield www, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_fetch_downloads_the_published_zip_and_verifies_it(data_dir, cache, served, capsys):
    www, base = served
    with zipfile.ZipFile(www / "ai4i.zip", "w") as archive:
        archive.write(data_dir / AI4I, "ai4i2020.csv")
    assert main(["data", "fetch", "ai4i2020", "--url", f"{base}/ai4i.zip"]) == 0
    assert _sha(cache / AI4I) == DATASETS["ai4i2020"].files[0].sha256
    assert "SHA-256 matches the published file" in capsys.readouterr().out
    assert main(["data", "fetch", "ai4i2020"]) == 0  # present and valid: nothing to download
    assert "already present and verified" in capsys.readouterr().out


def test_fetch_picks_its_member_from_the_uci_sentences_zip(data_dir, cache, served):
    www, base = served
    with zipfile.ZipFile(www / "sentences.zip", "w") as archive:
        archive.writestr("sentiment labelled sentences/readme.txt", "About the data\n")
        archive.writestr("sentiment labelled sentences/yelp_labelled.txt", "Great food.\t1\n")
        archive.write(data_dir / CELLS, "sentiment labelled sentences/amazon_cells_labelled.txt")
        archive.writestr("__MACOSX/sentiment labelled sentences/._amazon_cells_labelled.txt", "junk")
    assert main(["data", "fetch", "amazon_cells", "--url", f"{base}/sentences.zip"]) == 0
    assert (cache / CELLS).read_bytes() == (data_dir / CELLS).read_bytes()


def test_a_truncated_or_missing_download_is_one_line(data_dir, cache, served, capsys):
    www, base = served
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.write(data_dir / AI4I, "ai4i2020.csv")
    (www / "cut.zip").write_bytes(buffer.getvalue()[:50_000])
    assert main(["data", "fetch", "ai4i2020", "--url", f"{base}/cut.zip"]) == 2
    assert "cut.zip: a zip without its central directory (truncated download?)" in capsys.readouterr().err
    assert main(["data", "fetch", "ai4i2020", "--url", f"{base}/gone.zip"]) == 2
    err = capsys.readouterr().err
    assert "HTTP 404" in err and "`python -m bench data fetch ai4i2020 --from FILE`" in err
    assert not (cache / AI4I).exists()  # nothing half-written lands in the cache


def test_from_a_zip_without_the_file_names_what_it_found(cache, tmp_path, capsys):
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as archive:
        archive.writestr("yelp_labelled.txt", "Great food.\t1\n")
        archive.writestr("imdb_labelled.txt", "Great film.\t1\n")
    assert main(["data", "fetch", "amazon_cells", "--from", str(tmp_path / "other.zip")]) == 2
    assert "holds none of amazon_cells_labelled.txt (found: imdb_labelled.txt, yelp_labelled.txt)" in capsys.readouterr().err


def test_from_imports_unsw_by_content_whatever_its_name(data_dir, cache, tmp_path, capsys):
    """Kaggle names the 82,332-row testing partition 'training-set': it must land as testing."""
    plain = tmp_path / "UNSW_NB15_training-set.csv"
    plain.write_bytes(gzip.decompress((data_dir / UNSW_TEST).read_bytes()))
    assert main(["data", "fetch", "unsw_nb15", "--from", str(plain)]) == 0
    out = capsys.readouterr().out
    assert f"official testing partition -> {cache / UNSW_TEST}" in out
    assert "the optional official training partition (175,341 rows) is not present" in out
    assert not (cache / "unsw_nb15/UNSW_NB15_training-set.csv.gz").exists()
    ds = dataset("unsw")
    assert len(check_file(ds, ds.files[0])) == 82_332


def test_from_refuses_an_edited_copy_unless_forced(data_dir, cache, tmp_path, capsys):
    edited = tmp_path / "ai4i2020.csv"
    edited.write_bytes((data_dir / AI4I).read_bytes().replace(b"\r\n", b"\n"))  # re-saved with LF
    assert main(["data", "fetch", "ai4i2020", "--from", str(edited)]) == 2
    assert "differs from the published AI4I 2020 table" in capsys.readouterr().err
    assert not (cache / AI4I).exists()
    assert main(["data", "fetch", "ai4i2020", "--from", str(edited), "--force"]) == 0
    assert "imported with --force" in capsys.readouterr().out
    assert main(["data", "verify", "ai4i2020"]) == 2  # verify still tells the user it is not the published file
    assert "differs from the published file's" in capsys.readouterr().err


def test_kaggle_fetch_imports_the_partitions_from_the_client_folder(data_dir, cache, tmp_path, monkeypatch, capsys):
    folder = tmp_path / "kaggle" / "versions" / "1"
    folder.mkdir(parents=True)
    shutil.copyfile(data_dir / UNSW_TEST, folder / "UNSW_NB15_training-set.csv.gz")  # Kaggle's swapped name
    (folder / "NUSW-NB15_features.csv").write_text("No.,Name\n1,srcip\n")  # other files of the Kaggle dataset
    calls = []
    fake = types.SimpleNamespace(dataset_download=lambda handle: calls.append(handle) or str(folder))
    monkeypatch.setitem(__import__("sys").modules, "kagglehub", fake)
    assert main(["data", "fetch", "unsw_nb15"]) == 0
    assert calls == ["mrwellsdavid/unsw-nb15"]
    assert (cache / UNSW_TEST).is_file()
    assert "official testing partition" in capsys.readouterr().out


def test_a_missing_client_names_the_package(cache, monkeypatch, capsys):
    monkeypatch.setitem(__import__("sys").modules, "datasets", None)  # import datasets -> ImportError
    assert main(["data", "fetch", "amazon_polarity"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: fetching amazon_polarity needs the datasets package: pip install datasets")
    assert len(err) == 2 and err[0].startswith("amazon_polarity: fetching with the datasets library")


class FakeSplit:
    """What datasets.Dataset offers here: len(), select(indices) -> column access by name."""

    def __init__(self, n: int, split: str) -> None:
        self.rows = {
            "label": [i % 2 for i in range(n)],
            "title": [f"{split} title {i}" for i in range(n)],
            "content": [f"content of {split} review {i}, with a comma" for i in range(n)],
        }

    def __len__(self) -> int:
        return len(self.rows["label"])

    def select(self, indices: list[int]) -> dict[str, list]:
        return {k: [v[i] for i in indices] for k, v in self.rows.items()}


def test_polarity_subset_is_seeded_and_in_the_shared_layout():
    splits = {"train": FakeSplit(1000, "train"), "test": FakeSplit(400, "test")}
    first = polarity_subset(splits, 150, seed=7)
    assert list(first.columns) == list(POLARITY_COLUMNS)
    pd.testing.assert_frame_equal(first, polarity_subset(splits, 150, seed=7))
    assert not first.equals(polarity_subset(splits, 150, seed=8))
    assert first["split"].value_counts().to_dict() == {"train": 150, "test": 150}
    row = first.iloc[0]
    assert row["text"] == f"train title {row['source_line'] - 1}: content of train review {row['source_line'] - 1}, with a comma"
    assert set(first["subset"]) == {"random_sample_150_seed7"}


def test_polarity_fetch_writes_a_file_that_verifies(cache, monkeypatch, capsys):
    splits = {"train": FakeSplit(500, "train"), "test": FakeSplit(500, "test")}
    fake = types.SimpleNamespace(load_dataset=lambda name: splits)
    monkeypatch.setitem(__import__("sys").modules, "datasets", fake)
    assert main(["data", "fetch", "amazon_polarity", "--subset-size", "80", "--seed", "3"]) == 0
    frame = pd.read_csv(cache / "amazon_reviews/amazon_polarity_subset.csv.gz")
    assert len(frame) == 160 and list(frame.columns) == list(POLARITY_COLUMNS)
    assert main(["data", "verify", "amazon_polarity"]) == 0
    assert "160" in capsys.readouterr().out


def test_verify_and_info_on_the_real_data(data_dir, monkeypatch, capsys):
    monkeypatch.setenv("BENCH_DATA_DIR", str(data_dir))
    assert main(["data", "verify", "ai4i2020", "amazon_reviews"]) == 0
    out = capsys.readouterr().out
    assert "10,000" in out and "12,443" in out and "1,000" in out
    assert main(["data", "info", "unsw_nb15"]) == 0
    out = capsys.readouterr().out
    assert "734fe6642edf758f7c94d7d9149426b49d202fe8e7bf0bef47392489c3c0a559" in out
    assert "commercial use needs the authors' agreement" in out
    assert "[absent, optional]" in out or "[present]" in out


def test_names_and_groups():
    assert dataset("maintenance").name == "ai4i2020"
    assert dataset("UNSW").name == "unsw_nb15"
    assert [d.name for d in selected(["amazon_reviews"])] == ["amazon_polarity", "amazon_cells"]
    assert [d.name for d in selected(None)] == list(DATASETS)

