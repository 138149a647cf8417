"""Sentiment workload: offline model resolution, `bench predict`, and a tiny real fine-tuning run.

The tests that start processes are in tests/e2e/test_sentiment.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from bench.cli import main as bench_main
from bench.data.text_cleaning import clean_for_model
from bench.errors import BenchError
from tests.helpers.sentiment import offline  # noqa: F401  (autouse)
from workloads.sentiment import LABELS, Sentiment, default_model_path, resolve_model


def test_default_model_resolves_offline_to_the_packaged_minilm():
    path = Path(resolve_model(""))
    assert path == Path(default_model_path())
    assert (path / "config.json").is_file() and (path / "model.safetensors").is_file()
    assert Sentiment.unavailable_reason({}) is None


@pytest.mark.parametrize(
    "name, says",
    [
        ("no-such-org/no-such-model", "not in the Hugging Face cache, and the hub is not reachable"),
        ("/no/such/folder", "no such folder"),
        ("bad id with spaces", "neither a folder nor a valid hub id"),
    ],
)
def test_unresolvable_model_is_a_one_line_error_never_a_substitute(name, says):
    with pytest.raises(BenchError) as caught:
        resolve_model(name)
    message = str(caught.value)
    assert message.startswith(f"cannot resolve model {name!r}") and says in message
    assert "\n" not in message
    assert Sentiment.unavailable_reason({"model": name}) == message


def test_folder_without_config_is_refused(tmp_path):
    with pytest.raises(BenchError, match="has no config.json"):
        resolve_model(str(tmp_path))


def _reviews_copy(tmp_path: Path, monkeypatch, edit) -> None:
    """The first 1,100 reviews of the real subset with `edit` applied, plus the real UCI file."""
    import gzip
    import shutil

    from bench.paths import data_dir

    real = data_dir() / "amazon_reviews"
    folder = tmp_path / "amazon_reviews"
    folder.mkdir()
    frame = pd.read_csv(real / "amazon_polarity_subset.csv.gz").head(1100)
    edit(frame)
    (folder / "amazon_polarity_subset.csv.gz").write_bytes(gzip.compress(frame.to_csv(index=False).encode()))
    shutil.copyfile(real / "amazon_cells_labelled.txt", folder / "amazon_cells_labelled.txt")
    monkeypatch.setenv("BENCH_DATA_DIR", str(tmp_path))


SMALL = {"max_length": 16, "train_subset": 40, "val_subset": 40, "test_subset": 40, "ood_subset": 40}


def test_empty_reviews_are_dropped_and_counted(tmp_path, monkeypatch):
    def empty_three(frame):
        frame.loc[[3, 4], "text"] = ""  # blank in the file
        frame.loc[5, "text"] = "<br /> http://example.com/x"  # empty once cleaned

    _reviews_copy(tmp_path, monkeypatch, empty_three)
    info = Sentiment(params=SMALL).load(0).info
    steps = {(step["file"], step["step"]): step["rows_changed"] for step in info["cleaning"]}
    reviews = "amazon_reviews/amazon_polarity_subset.csv.gz"
    assert steps[(reviews, "drop reviews empty after cleaning")] == 3
    assert steps[(reviews, "clean text for the model (HTML entities and tags, URLs, unicode, whitespace)")] >= 1
    assert steps[(reviews, "drop duplicate reviews (same cleaned text up to case and whitespace), first kept")] == 0
    assert steps[("amazon_reviews/amazon_cells_labelled.txt", "drop sentences empty after cleaning")] == 0


def test_reviews_of_one_class_are_refused(tmp_path, monkeypatch):
    _reviews_copy(tmp_path, monkeypatch, lambda frame: frame.__setitem__("label", 1))
    with pytest.raises(BenchError, match=r"label column 'label' holds one class only \(1 in all 1,100 rows\)"):
        Sentiment(params=SMALL).load(0)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """The base MiniLM with a fresh (seeded) classification head, saved as a bench checkpoint."""
    from transformers import AutoModelForSequenceClassification

    from bench.checkpoint import save_checkpoint

    torch.manual_seed(0)
    workload = Sentiment(params={"max_length": 32})
    model = AutoModelForSequenceClassification.from_pretrained(default_model_path(), num_labels=2, local_files_only=True)
    folder = tmp_path_factory.mktemp("ckpt") / "sentiment"
    meta = {"workload": "sentiment", "base_model": "test", "max_length": 32, "labels": LABELS, "metrics": {}, "cell": None}
    save_checkpoint(model, workload.tokenizer, folder, meta)
    return folder


def _direct_probabilities(folder: Path, texts: list[str], clean=clean_for_model) -> np.ndarray:
    from bench.checkpoint import load_checkpoint

    model, tokenizer, _ = load_checkpoint(folder)
    with torch.no_grad():
        probs = []
        for text in texts:  # one at a time: no padding involved
            enc = tokenizer(clean(text), truncation=True, max_length=32, return_tensors="pt")
            probs.append(torch.softmax(model(**enc).logits, dim=-1)[0].numpy())
    return np.asarray(probs)


def test_predict_csv_with_labels_writes_probabilities_and_prints_metrics(tiny_checkpoint, tmp_path, capsys):
    texts = ["Great product, works perfectly!", "Broke after <b>two days</b>. Don't buy.", "It is okay, I guess.",
             "An absolutely wonderful, long, detailed and glowing review " * 5]
    source = tmp_path / "in.csv"
    pd.DataFrame({"id": [7, 8, 9, 10], "Text": texts, "label": ["positive", "0", "1", "negative"]}).to_csv(source, index=False)
    out = tmp_path / "out" / "pred.csv"
    assert bench_main(["predict", "--checkpoint", str(tiny_checkpoint), "--input", str(source), "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "accuracy" in printed and "f1" in printed
    pred = pd.read_csv(out)
    assert list(pred.columns) == ["row", "text", "label", "prediction", "prob_negative", "prob_positive"]
    assert list(pred["label"]) == ["positive", "negative", "positive", "negative"]
    np.testing.assert_allclose(pred["prob_negative"] + pred["prob_positive"], 1.0, atol=1e-5)
    # Batched, length-sorted, padded inference gives the same probabilities as one review at a time.
    expected = _direct_probabilities(tiny_checkpoint, texts)
    np.testing.assert_allclose(pred[["prob_negative", "prob_positive"]].to_numpy(), expected, atol=1e-4)
    assert list(pred["prediction"]) == [LABELS[i] for i in expected.argmax(axis=1)]


def test_predict_detects_the_uci_tab_format_and_plain_lines(tiny_checkpoint, tmp_path, capsys):
    uci = tmp_path / "uci.txt"
    uci.write_text('Great for the jawbone.\t1\nThe "mic" is bad.\t0\nWorks.\t1\n')
    assert bench_main(["predict", "--checkpoint", str(tiny_checkpoint), "--input", str(uci), "--output", str(tmp_path / "a.csv")]) == 0
    assert "accuracy" in capsys.readouterr().out
    assert list(pd.read_csv(tmp_path / "a.csv")["label"]) == ["positive", "negative", "positive"]

    lines = tmp_path / "reviews.txt"
    lines.write_text("I love it\n\nterrible, returned it\n")
    assert bench_main(["predict", "--checkpoint", str(tiny_checkpoint), "--input", str(lines), "--output", str(tmp_path / "b.csv")]) == 0
    assert "accuracy" not in capsys.readouterr().out
    pred = pd.read_csv(tmp_path / "b.csv")
    assert list(pred["row"]) == [1, 3] and "label" not in pred.columns


@pytest.mark.parametrize(
    "content, name, says",
    [
        ("id,body\n1,hello\n", "x.csv", "no text column"),
        ("text,label\nhello,maybe\n", "x.csv", "has label 'maybe'"),
        ("", "x.txt", "no reviews"),
        ("text\n", "x.csv", "no reviews"),
    ],
)
def test_predict_bad_input_is_a_one_line_error(tiny_checkpoint, tmp_path, capsys, content, name, says):
    source = tmp_path / name
    source.write_text(content)
    assert bench_main(["predict", "--checkpoint", str(tiny_checkpoint), "--input", str(source)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and says in err and "\n" not in err


def _with_metadata(checkpoint: Path, folder: Path, **change) -> Path:
    """The checkpoint as symlinks in `folder` (no 90 MB copy), with its metadata changed."""
    folder.mkdir()
    for item in checkpoint.iterdir():
        (folder / item.name).symlink_to(item)
    meta = json.loads((checkpoint / "bench_checkpoint.json").read_text())
    (folder / "bench_checkpoint.json").unlink()
    (folder / "bench_checkpoint.json").write_text(json.dumps({**meta, **change}))
    return folder


def _predicted(checkpoint: Path, source: Path, out: Path) -> np.ndarray:
    assert bench_main(["predict", "--checkpoint", str(checkpoint), "--input", str(source), "--output", str(out)]) == 0
    return pd.read_csv(out)[["prob_negative", "prob_positive"]].to_numpy()


def test_predict_honours_the_cleaning_the_checkpoint_records(tiny_checkpoint, tmp_path, capsys):
    """predict cleans as the checkpoint's metadata says training did, like `bench serve`: the named
    cleaning, none for an explicit null (tiny_checkpoint records no key at all: the cleaning bench
    used before it recorded one, clean_for_model, as the tests above check)."""
    texts = ["<b>Great</b> phone &amp; case https://example.com/x", "Broke after <i>two days</i>. Don't buy."]
    source = tmp_path / "in.csv"
    pd.DataFrame({"text": texts}).to_csv(source, index=False)
    named = _with_metadata(tiny_checkpoint, tmp_path / "named", cleaning="bench.data.text_cleaning.clean_for_model")
    uncleaned = _with_metadata(tiny_checkpoint, tmp_path / "uncleaned", cleaning=None)

    with_cleaning = _predicted(named, source, tmp_path / "named.csv")
    without = _predicted(uncleaned, source, tmp_path / "uncleaned.csv")
    np.testing.assert_allclose(with_cleaning, _direct_probabilities(tiny_checkpoint, texts), atol=1e-4)
    np.testing.assert_allclose(without, _direct_probabilities(tiny_checkpoint, texts, clean=str), atol=1e-4)
    assert np.abs(with_cleaning - without).max() > 1e-3  # the markup reached the model only when uncleaned
    assert list(pd.read_csv(tmp_path / "uncleaned.csv")["text"]) == texts  # the output keeps the input text


def test_predict_refuses_a_cleaning_it_does_not_know(tiny_checkpoint, tmp_path, capsys):
    source = tmp_path / "r.txt"
    source.write_text("fine\n")
    folder = _with_metadata(tiny_checkpoint, tmp_path / "odd", cleaning="os.system")
    assert bench_main(["predict", "--checkpoint", str(folder), "--input", str(source),
                       "--output", str(tmp_path / "p.csv")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "unknown text cleaning 'os.system'" in err and "\n" not in err
    assert not (tmp_path / "p.csv").exists()


def test_predict_refuses_a_folder_that_is_not_a_checkpoint(tmp_path, capsys):
    source = tmp_path / "r.txt"
    source.write_text("fine\n")
    assert bench_main(["predict", "--checkpoint", str(tmp_path), "--input", str(source)]) == 2
    assert "not a bench checkpoint" in capsys.readouterr().err


def test_frozen_embeddings_stay_put_while_the_encoder_trains():
    torch.manual_seed(0)
    workload = Sentiment(None, {"freeze_embeddings": True, "max_length": 16})
    model = workload.build_model()
    frozen = {name for name, param in model.named_parameters() if not param.requires_grad}
    assert frozen == {
        "bert.embeddings.word_embeddings.weight",
        "bert.embeddings.position_embeddings.weight",
        "bert.embeddings.token_type_embeddings.weight",
    }
    before = {name: param.detach().clone() for name, param in model.named_parameters()}
    batch = workload.tokenizer(["great value", "broke at once"], return_tensors="pt", padding=True)
    batch["labels"] = torch.tensor([1, 0])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    workload.loss(model, batch).backward()
    optimizer.step()
    for name, param in model.named_parameters():
        moved = not torch.equal(param, before[name])
        assert moved == (name not in frozen), name

