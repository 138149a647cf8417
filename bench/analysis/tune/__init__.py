"""`bench tune`: the fastest Accelerate setup to target on this host, with its evidence (docs/tune.md).

Read in this order:
- `tuner.py`: the whole command top to bottom: reference to target, prune, race, finals.
- `space.py`: the candidates (topology, precision, knobs) and why each pruned one cannot run here.
- `facts.py`: the one host fact measured for pruning: the cheapest cold compile.
- `race.py`: probes, their projected time to target, and who is dropped as significantly slower.
- `finals.py`: the finalists against the reference (quality, samples) and against the fastest.
- `record.py`: tune.json, tune.md and the Accelerate config file of the recommendation.

bench/commands/tune.py is the command.
"""
