"""`bench export RUN_DIR`: a run as a Hugging Face `datasets.Dataset`, one flat row per cell
(bench/analysis/export.py), saved with `save_to_disk` (`datasets.load_from_disk` reads it back) and/or
pushed to the Hugging Face Hub."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.commands.report import _resolve_run_dir
from bench.errors import BenchError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR",
                        help="a run directory (results/<run-id>), a run id under results/, or one result file")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="save the dataset to this folder (Dataset.save_to_disk; a dataset saved there before is replaced)")
    parser.add_argument("--push-to-hub", metavar="REPO",
                        help="push the dataset to this Hugging Face Hub dataset repo (user/name); needs network and a "
                             "token (`hf auth login` or HF_TOKEN)")
    parser.add_argument("--private", action="store_true", help="with --push-to-hub: create the repo private")


def run(args: argparse.Namespace) -> int:
    from bench.analysis.export import cells_frame, push_dataset, require, run_id_of, save_dataset, to_dataset

    if args.out is None and args.push_to_hub is None:
        raise BenchError("give --out DIR, --push-to-hub REPO, or both")
    if args.private and args.push_to_hub is None:
        raise BenchError("--private goes with --push-to-hub")
    require("datasets", "bench export")
    run_dir = _resolve_run_dir(args.run_dir)
    frame = cells_frame(run_dir)
    dataset = to_dataset(frame, run_id_of(run_dir))
    if args.out is not None:
        save_dataset(dataset, args.out)
        print(f"{len(frame)} cells saved to {args.out} (datasets.load_from_disk reads it)")
    if args.push_to_hub is not None:
        push_dataset(dataset, args.push_to_hub, args.private)
        print(f"{len(frame)} cells pushed to https://huggingface.co/datasets/{args.push_to_hub}")
    return 0
