"""`bench predict`: classify reviews with a fine-tuned checkpoint (bench run --save-checkpoint).

Input formats (auto-detected, or named with --format):
    csv    a header line and a text column (text, review or sentence); an optional label column
           (0/1 or negative/positive) turns on the metrics. Also .csv.gz.
    tsv    the UCI "Sentiment Labelled Sentences" layout: `sentence<TAB>label` per line, no header.
    lines  one review per line, no labels (empty lines are skipped).
Output: a CSV with the input row number, the text, the predicted label and one probability per
label. Texts are cleaned as the checkpoint's training texts were (the cleaning its metadata records).

The model is loaded and run by bench.serving.serve.Predictor, the same code that answers `bench serve`:
one model loading, cleaning, tokenisation and batching for both commands.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import pandas as pd

from bench.errors import BenchError
from bench.serving.serve import SERVING_DEVICES

FORMATS = ("auto", "csv", "tsv", "lines")
TEXT_COLUMNS = ("text", "review", "sentence")
UCI_LINE = re.compile(r"^.*\t\s*[01]\s*$")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, type=Path, help="folder written by `bench run --save-checkpoint`")
    parser.add_argument("--input", required=True, type=Path, help="reviews to classify (csv, UCI tab format, or one per line)")
    parser.add_argument("--output", type=Path, help="predictions CSV (default: <input name>.predictions.csv in the current folder)")
    parser.add_argument("--format", choices=FORMATS, default="auto", help="input format (default: detected)")
    parser.add_argument("--device", choices=SERVING_DEVICES, default="auto",
                        help="where the model runs: auto (the first visible CUDA GPU, else the CPU), cpu or cuda")
    parser.add_argument("--batch-size", type=int, default=64, help="reviews per forward pass (default 64)")


def read_input(path: Path, fmt: str = "auto") -> pd.DataFrame:
    """Rows with `row` (1-based, in the input), `text` and, if the input has labels, `label` (0/1)."""
    if not path.is_file():
        raise BenchError(f"input file {path} not found")
    if fmt == "auto":
        fmt = _detect_format(path)
    if fmt == "csv":
        frame = _read_csv(path)
    elif fmt == "tsv":
        from workloads.sentiment import read_labelled_sentences

        frame = read_labelled_sentences(path)
        frame.insert(0, "row", range(1, len(frame) + 1))
    else:
        rows = [(i, line) for i, line in enumerate(_read_text(path).splitlines(), start=1) if line.strip()]
        frame = pd.DataFrame(rows, columns=["row", "text"])
    if frame.empty:
        raise BenchError(f"{path}: no reviews in the file")
    return frame.reset_index(drop=True)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise BenchError(f"{path}: not UTF-8 text (byte {exc.start})") from None


def _detect_format(path: Path) -> str:
    if path.name.endswith((".csv", ".csv.gz")):
        return "csv"
    lines = [line for line in _read_text(path).splitlines() if line.strip()]
    if lines and all(UCI_LINE.match(line) for line in lines):
        return "tsv"
    return "lines"


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise BenchError(f"{path}: the file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, EOFError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BenchError(f"{path}: cannot be parsed as CSV ({first})") from None
    columns = {c.strip().lower(): c for c in frame.columns}
    text_column = next((columns[c] for c in TEXT_COLUMNS if c in columns), None)
    if text_column is None:
        raise BenchError(
            f"{path}: no text column (found {', '.join(map(repr, frame.columns))}; expected one of {', '.join(TEXT_COLUMNS)})"
        )
    out = pd.DataFrame({"row": range(1, len(frame) + 1), "text": frame[text_column]})
    if "label" in columns:
        out["label"] = _labels(frame[columns["label"]], path)
    return out[out["text"].str.strip() != ""]


def _labels(values: pd.Series, path: Path) -> pd.Series:
    mapping = {"0": 0, "1": 1, "negative": 0, "positive": 1}
    mapped = values.str.strip().str.lower().map(mapping)
    if mapped.isna().any():
        row = int(mapped.isna().to_numpy().argmax())
        raise BenchError(f"{path}: data row {row + 1} has label {values.iloc[row]!r}; expected 0/1 or negative/positive")
    return mapped.astype(int)


def run(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        raise BenchError(f"--batch-size must be at least 1, got {args.batch_size}")
    frame = read_input(args.input, args.format)
    output = args.output or Path(f"{args.input.name.removesuffix('.gz')}.predictions.csv")

    from bench.serving.serve import Predictor, RequestError
    from workloads.metrics import binary_metrics

    # Refuses a damaged checkpoint, labels or max_length that do not fit the model, and a cleaning
    # it does not know, each as a one-line BenchError.
    predictor = Predictor(args.checkpoint, device=args.device)
    labels = predictor.labels
    try:
        probabilities = predictor.probabilities(predictor.clean(list(frame["text"])), args.batch_size)
    except RequestError as exc:  # a text the tokenizer cannot read
        raise BenchError(f"{args.input}: {exc}") from None
    predicted = probabilities.argmax(axis=1)

    out = frame[["row", "text"]].copy()
    if "label" in frame:
        out["label"] = [labels[i] for i in frame["label"]]
    out["prediction"] = [labels[i] for i in predicted]
    for i, label in enumerate(labels):
        out[f"prob_{label}"] = probabilities[:, i].round(6)
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        out.to_csv(output, index=False)
    except OSError as exc:
        raise BenchError(f"cannot write {output} ({exc.strerror})") from None
    print(f"{len(out)} predictions -> {output}", file=sys.stderr)

    if "label" in frame:
        from tabulate import tabulate

        metrics = binary_metrics(frame["label"].to_numpy(), predicted, probabilities[:, 1])
        print(tabulate([[k, f"{v:.4f}"] for k, v in metrics.items()], headers=["metric", args.input.name], tablefmt="github"))
    else:
        counts = out["prediction"].value_counts()
        print(", ".join(f"{label}: {int(counts.get(label, 0))}" for label in labels))
    return 0
