"""Tie a process's life to its parent's, with nothing heavy imported.

Launchers run in their own process group so that a timeout can kill a cell as a whole, and
torchrun starts its workers in sessions of their own; neither is reached when the runner itself
is killed with SIGKILL. Each process therefore asks Linux to kill it when its parent dies
(PR_SET_PDEATHSIG). A worker calls this first thing, before importing torch, so that a runner
killed while the worker is still importing cannot leave an orphan behind.
"""

from __future__ import annotations

import ctypes
import os
import signal

PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """Be killed with `sig` when the parent process dies; exit now if it already has."""
    parent = os.getppid()
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, sig)
    except (OSError, AttributeError):
        return  # not Linux: the process-group kill on timeout still applies
    # The parent may have died before the request took effect: then we were re-parented.
    if os.getppid() != parent:
        os._exit(1)
