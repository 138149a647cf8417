"""What a cell is, without torch: the training budget (and, next, the typed cell and its key).

The harness, the analysis and the result files all share these definitions, so this module
imports nothing heavier than the standard library.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Budget:
    """When to give up on the target. Whichever limit comes first ends training."""

    max_epochs: int = 50
    max_seconds: float = 120.0
    """Training-clock seconds (evaluation included), checked at each evaluation."""
    max_steps: int | None = None
