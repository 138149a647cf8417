"""The one exception type that reaches the user as a single line.

Anything a user can get wrong (a path, a column, a config name, a request) raises
`BenchError`; the CLI prints `error: <message>` and exits with `exit_code`, no traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class BenchError(Exception):
    """A user-facing error: one line, and the exit code the CLI should return."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def one_of(kind: str, name: str, choices: list[str] | tuple[str, ...]) -> BenchError:
    """Error for an unknown name, listing the valid choices."""
    return BenchError(f"unknown {kind} {name!r}; valid choices: {', '.join(sorted(choices))}")


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none): what a
    one-line error quotes from a library's multi-line message."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def read_yaml_file(path: Path, what: str) -> Any:
    """The YAML document in `path`, or a one-line BenchError naming the file: unreadable, not text,
    or malformed. `what` says what the file should be ("a matrix", "an accelerate config")."""
    import yaml

    try:
        return yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise BenchError(f"{path}: cannot read {what.split(' ', 1)[-1]} ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise BenchError(f"{path}: not a text file (byte {exc.start} is not UTF-8); {what} is a YAML file") from None
    except yaml.YAMLError as exc:
        raise BenchError(f"{path}: malformed YAML ({first_line(exc)})") from None
