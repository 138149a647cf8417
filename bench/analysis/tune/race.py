"""The race: short probes of every candidate, and who is dropped as significantly slower.

A probe is one launch of one seed, trained for a few steps. Its figure is the projected time to
the reference's number of optimizer steps to target (`projected_seconds`): the probe's own
training clock (its evaluations, and any compile, included: a compile is paid once per run, so
it counts against the run's expected length) plus its remaining steps at its median step time.
Launches are the units because launch-to-launch spread (12-24% on these hosts, docs/gate.md)
dwarfs the spread between seeds of one launch: seeds sharing a launch are not independent.

Successive halving, with an error rate that holds at the sample size used. In each round every
surviving candidate gets fresh probes, interleaved; the round's leader is chosen before the round
from earlier data only (the reference in round 1, then the lowest median so far). Each other
candidate is tested against the leader by the one-sided exact rank-sum test on that round's probes
(bench.analysis.stats) at level alpha / rounds, and dropped if slower. The fastest candidate is
then tested at most once per round, each time against a leader chosen independently of the
round's data, so the chance that the race drops it is at most alpha, however many candidates race
(tests/unit/test_tune.py checks this by simulation). Candidates the race cannot tell apart go on; the
finals (bench.analysis.tune.finals) run the best of them to target.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from bench.analysis import stats
from bench.analysis.tune.space import Candidate
from bench.results import Result


@dataclass(frozen=True)
class RaceSettings:
    """How hard the race looks. The defaults fit a race into a third of an exhaustive run on a 2-core CPU."""

    rounds: int = 1
    """At most this many rounds; alpha is split evenly between them. One by default: a probe costs
    about a launch (5-7 s on a 2-core CPU), nearly what a short run to target costs, so a second
    round of probes costs more than running its survivors to target in the finals."""
    probes: int = 2
    """Probes (launches) per candidate and round."""
    leader_probes: int = 5
    """Probes of the round's leader. The one-sided rank-sum test of 2 v 5 probes can reach p = 1/21,
    under the 0.05 of one round; over 2 rounds (0.025 each) it needs 2 v 8 or 3 v 5. The leader's
    probes serve every test of the round, so they are the cheap side to grow."""
    alpha: float = 0.05
    """The most often the race may drop the fastest candidate."""
    finalists: int = 2
    """The candidates (the reference aside) run to target after the race."""
    probe_steps: int = 50
    """The most optimizer steps a probe trains; the rest of the reference's steps are projected."""

    @property
    def level(self) -> float:
        return self.alpha / self.rounds

    def can_decide(self) -> bool:
        """Whether a round's test can reach its level at all with these probe counts."""
        return stats.smallest_p(self.probes, self.leader_probes, two_sided=False) <= self.level


@dataclass(frozen=True)
class Probe:
    """One probe's outcome: its projected seconds, or why it has none."""

    candidate: Candidate
    round: int
    seed: int
    projected_s: float | None
    status: str
    reason: str = ""
    wall_s: float | None = None
    """What the probe cost: its launch's whole wall time (bench.results.Result.cell_wall_s)."""


@dataclass(frozen=True)
class Drop:
    """A candidate the race dropped, and the evidence."""

    candidate: Candidate
    round: int
    leader: Candidate | None
    ratio: float | None
    """Hodges-Lehmann estimate of its projected time over the leader's; None when it ran to no number."""
    p_value: float | None
    level: float | None
    reason: str


@dataclass
class RaceState:
    """Every probe so far and every drop: what the next round is decided from."""

    probes: list[Probe] = field(default_factory=list)
    drops: list[Drop] = field(default_factory=list)

    def alive(self, candidates: list[Candidate]) -> list[Candidate]:
        dropped = {d.candidate for d in self.drops}
        return [c for c in candidates if c not in dropped]

    def figures(self, candidate: Candidate, round_: int | None = None) -> list[float]:
        return [p.projected_s for p in self.probes if p.candidate == candidate and p.projected_s is not None
                and (round_ is None or p.round == round_)]

    def median(self, candidate: Candidate) -> float:
        value = stats.median(self.figures(candidate))
        return math.inf if value is None else value


def projected_seconds(result: Result, steps_to_target: int) -> float | None:
    """The probe's training clock plus its remaining steps (to `steps_to_target`) at its median step
    time; None for a probe that trained no step."""
    clock, step = result.timings.train_seconds, result.timings.step_time_median_s
    steps = result.timings.extra.get("steps")
    if not result.trained or clock is None or step is None or not steps:
        return None
    return clock + max(0, steps_to_target - int(steps)) * step


def choose_leader(state: RaceState, alive: list[Candidate], reference: Candidate) -> Candidate:
    """The next round's leader, from earlier rounds only: the lowest median projected time so far
    (the reference before any probe, and while it is alive and nothing measured beats it)."""
    measured = [c for c in alive if state.figures(c)]
    if not measured:
        return reference if reference in alive else alive[0]
    return min(measured, key=lambda c: (state.median(c), c != reference))


def interleaved(alive: list[Candidate], leader: Candidate, settings: RaceSettings, round_: int) -> list[Candidate]:
    """The round's probes in launch order: every other candidate's probes round-robin (the order
    reversed in even rounds), the leader's spread evenly through them, so that drift in the host
    falls on every candidate alike."""
    others = [c for c in (alive if round_ % 2 else alive[::-1]) if c != leader]
    sequence = [c for _ in range(settings.probes) for c in others]
    slots = settings.leader_probes
    for i in range(slots):  # the leader's i-th probe at the i-th of `slots` even positions
        sequence.insert(min(len(sequence), round(i * (len(sequence) + slots) / slots)), leader)
    return sequence


def judge_round(state: RaceState, round_: int, leader: Candidate, alive: list[Candidate],
                settings: RaceSettings) -> list[Drop]:
    """The round's drops: each candidate with no number, and each significantly slower than the
    leader. A probe refused at run time (unsupported, failed) counts as slower than every measured
    one (censored), on either side; a leader with no number at all is dropped, and nobody with it."""
    lead, lead_refused = state.figures(leader, round_), _refused(state, leader, round_)
    if lead_refused and not lead:
        return [_refusal(leader, round_, lead_refused[0])]
    drops = []
    for candidate in alive:
        if candidate == leader:
            continue
        figures, refused = state.figures(candidate, round_), _refused(state, candidate, round_)
        if refused and not figures:
            drops.append(_refusal(candidate, round_, refused[0]))
            continue
        test = stats.rank_sum_test(figures, lead, stats.GREATER, censored=(len(refused), len(lead_refused)))
        if test is not None and test.p_value <= settings.level:
            ratio = None if math.isnan(test.estimate) else test.estimate
            shown = f"by {ratio:.2f}x " if ratio is not None else ""
            drops.append(Drop(candidate, round_, leader, ratio, test.p_value, settings.level,
                              f"slower than {leader.label} {shown}(one-sided p = {test.p_value:.3g} <= "
                              f"{settings.level:.3g}, {len(figures) + len(refused)} v {len(lead) + len(lead_refused)} probes)"))
    return drops


def _refused(state: RaceState, candidate: Candidate, round_: int) -> list[Probe]:
    return [p for p in state.probes if p.candidate == candidate and p.round == round_ and p.projected_s is None]


def _refusal(candidate: Candidate, round_: int, probe: Probe) -> Drop:
    return Drop(candidate, round_, None, None, None, None, f"its probe came out {probe.status}: {probe.reason}".rstrip(": "))


def finalists(state: RaceState, alive: list[Candidate], reference: Candidate, count: int) -> tuple[list[Candidate], list[Candidate]]:
    """(the `count` alive candidates other than the reference with the lowest median projected time,
    the alive ones left behind them)."""
    others = sorted((c for c in alive if c != reference), key=lambda c: (state.median(c), c))
    return others[:count], others[count:]
