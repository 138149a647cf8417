"""Write the lock (requirements.lock) from a venv's installed packages: `make lock` calls it.

    python scripts/write_lock.py VENV OUT      # OUT '-' prints it (make test-latest diffs it)

The lock is a pip constraints file of exact versions. torch's local label (+cpu, +cu128) is
dropped: `torch==2.13.0` matches the CPU wheel here and a CUDA build of the same release.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

HEADER = """\
# The exact versions `make install` and `make install-test` install (a pip constraints file).
# Regenerate with `make lock` (newest versions the ranges in pyproject.toml allow, in a fresh venv);
# `make test-latest` runs the tests against those newest versions without touching this file.
# torch==X matches X+cpu and X+cuNNN alike; `make install LOCK=` installs without the lock.
"""


def locked_lines(venv: Path) -> list[str]:
    frozen = subprocess.run([str(venv / "bin" / "pip"), "freeze", "--exclude-editable"],
                            capture_output=True, text=True, check=True).stdout
    lines = [line.strip() for line in frozen.splitlines() if "==" in line]
    return sorted((re.sub(r"\+[\w.]+$", "", line) for line in lines), key=str.lower)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: write_lock.py VENV OUT", file=sys.stderr)
        return 2
    text = HEADER + "\n".join(locked_lines(Path(argv[0]))) + "\n"
    if argv[1] == "-":
        sys.stdout.write(text)
    else:
        Path(argv[1]).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
