"""`bench eda`: each report is written with its figures, and its numbers are the data's."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib.image
import pandas as pd
import pytest

from bench.cli import main
from tests.conftest import PROJECT_ROOT

NAMES = ("maintenance", "traffic", "sentiment")


SECTIONS = {
    "maintenance": ["Failure rate by product type", "Sensor readings, failing vs healthy rows", "Failure-mode co-occurrence",
                    "Failure rate against tool wear, temperature difference and power"],
    "traffic": ["Attack categories", "Features that separate normal from attack traffic", "Missing values and placeholders"],
    "sentiment": ["Class balance", "Review length", "Most frequent terms per class, after cleaning"],
}


@pytest.fixture(scope="module")
def reports(tmp_path_factory, data_dir) -> Path:
    out = tmp_path_factory.mktemp("eda")
    assert main(["eda", *NAMES, "--out", str(out)]) == 0
    return out


def _figures(readme: Path) -> list[str]:
    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", readme.read_text())


@pytest.mark.parametrize("name", NAMES)
def test_report_has_its_sections_and_every_figure(reports, name):
    folder = reports / name
    text = (folder / "README.md").read_text()
    for section in SECTIONS[name]:
        assert f"## {section}" in text
    linked = _figures(folder / "README.md")
    assert len(linked) >= 3
    assert sorted(linked) == sorted(p.name for p in folder.glob("*.png"))  # no orphan, no dangling link
    for figure in linked:
        image = matplotlib.image.imread(folder / figure)
        assert image.shape[0] > 200 and image.shape[1] > 300
        assert image.std() > 0.01  # not a blank canvas


def test_maintenance_numbers_are_the_data(reports, data_dir):
    frame = pd.read_csv(data_dir / "ai4i2020/ai4i2020.csv")
    text = (reports / "maintenance" / "README.md").read_text()
    assert f"{int(frame['Machine failure'].sum())} machine failures" in text
    for kind in "LMH":
        part = frame[frame["Type"] == kind]
        rate = 100 * part["Machine failure"].mean()
        assert f"| {kind}  " in text and f"{len(part)} |" in text and f"{rate:.2f} %" in text
    modes = frame[["TWF", "HDF", "PWF", "OSF", "RNF"]]
    assert f"{int((modes.sum(axis=1) > 1).sum())} rows have more than one mode" in text


def test_traffic_and_sentiment_numbers_are_the_data(reports, data_dir):
    unsw = pd.read_csv(data_dir / "unsw_nb15/UNSW_NB15_testing-set.csv.gz", usecols=["label", "attack_cat"])
    text = (reports / "traffic" / "README.md").read_text()
    assert f"{int(unsw['label'].sum()):,} attack rows" in text
    assert f"| Worms          |     {int((unsw['attack_cat'] == 'Worms').sum())} |" in text
    reviews = pd.read_csv(data_dir / "amazon_reviews/amazon_polarity_subset.csv.gz", usecols=["label"])
    text = (reports / "sentiment" / "README.md").read_text()
    assert f"{len(reviews):,} reviews" in text
    neg, pos = int((reviews["label"] == 0).sum()), int((reviews["label"] == 1).sum())
    assert re.search(rf"\| all\s+\|\s+{neg}\s+\|\s+{pos}\s+\|\s+{len(reviews)}\s+\|", text)


@pytest.mark.parametrize("name", NAMES)
def test_committed_reports_link_only_committed_figures(name):
    folder = PROJECT_ROOT / "reports" / "eda" / name
    assert (folder / "README.md").is_file(), f"run `python -m bench eda {name}` and commit reports/eda/{name}"
    for figure in _figures(folder / "README.md"):
        assert (folder / figure).is_file()

