"""`python -m bench <command>`: the command line.

Each command lives in bench/commands/<name>.py with two functions:
    configure(parser: argparse.ArgumentParser) -> None   # its arguments
    run(args: argparse.Namespace) -> int                  # its exit code
A user mistake anywhere raises BenchError, printed here as one line with its exit code.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import sys

from bench.errors import BenchError

# command -> one-line help. The module bench.commands.<command> implements it.
COMMANDS = {
    "run": "run a matrix of cells: train each workload to target under each Accelerate config",
    "predict": "classify reviews with a fine-tuned sentiment checkpoint; metrics when labels are present",
    "report": "turn a run directory into a Markdown report with tables and plots (or CSV/JSON, or Parquet per cell)",
    "export": "a run as a Hugging Face datasets.Dataset, one row per cell: save_to_disk and/or push_to_hub",
    "data": "fetch, verify and describe the datasets (data fetch|verify|info [DATASET])",
    "eda": "exploratory analysis of a dataset: Markdown report with plots (eda maintenance|traffic|sentiment)",
    "serve": "serve a fine-tuned sentiment checkpoint over HTTP (Flask behind waitress)",
    "loadtest": "measure serving latency and requests/s at 1, 8 and 32 concurrent clients on loopback",
    "compare": "judge a candidate run against a baseline (or the committed one for this hardware); exit 1 on a regression",
    "gate": "measure the base commit and this checkout side by side and judge the change over seeds; exit 1 on a regression",
    "doctor": "assert and record the facts every verdict on this host rests on (peaks, TF32, autocast, FSDP2, one cell of each kind)",
    "tune": "find the fastest Accelerate setup to target on this host: prune, race, run the finalists to target, recommend",
    "env": "print what every result records about this machine (cores, memory, CPU flags, GPUs, CUDA, load), for a bug report",
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser, with every command listed but only `command`'s module imported and configured.

    Command modules import heavy libraries (torch, accelerate, transformers: seconds to load), so
    `bench --help` and a mistyped command import none of them, and `bench report` imports only
    what the report needs.
    """
    parser = argparse.ArgumentParser(
        prog="bench",
        description="Train real workloads to a quality target across a matrix of Accelerate configurations.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, help_text in COMMANDS.items():
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            module = importlib.import_module(f"bench.commands.{name.replace('-', '_')}")
            module.configure(command_parser)
            command_parser.set_defaults(_run=module.run)
    return parser


def chosen_command(argv: list[str]) -> str | None:
    """The command named on the command line (the first word that is not an option), if any."""
    for word in argv:
        if not word.startswith("-"):
            return word if word in COMMANDS else None
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(chosen_command(argv))
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        # The machine, not the program: a full disk or a read-only folder gets one line too.
        # (The runner says more: which cells it kept and how to resume.)
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror}", file=sys.stderr)
        return 2
