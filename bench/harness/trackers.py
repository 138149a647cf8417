"""`bench run --log-with NAME`: each training cell in an experiment tracker, through Accelerate's
own trackers (`Accelerator(log_with=..., project_dir=...)`, `init_trackers`, `log`, `end_training`).

Per training cell, once its result is written (so that no tracker call falls inside the measured
time): the cell's configuration as hyperparameters, one entry per evaluation of the convergence
curve at step = training samples seen (`val/<metric>`, `train/loss`, `epoch`, `clock_s`), and the
final metrics at the last step (`final/<split>/<metric>`, `final/time_to_target_s`...).

Where each tracker writes (the run's trackers/ folder is results/<run>/trackers/):
    tensorboard   trackers/<cell>/ (event files, and accelerate's hparams.yml in a subfolder)
    mlflow        experiment <run>, run <cell>, in MLFLOW_TRACKING_URI (default: trackers/mlruns)
    wandb         project <run>, run <cell>; local files in trackers/; WANDB_MODE decides online/offline
    trackio       project <run>, run <cell>, in trackio's own local store
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
from pathlib import Path
from typing import Any

from bench.cells import topology_label
from bench.errors import BenchError, one_of

# --log-with choice -> the package it needs (and the accelerate-bench extra that installs it)
TRACKERS = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb", "trackio": "trackio"}

# Curve keys that place a point rather than measure the model.
_PLACING = ("step", "epoch", "samples", "seconds", "train_loss", "time_unix")


def require_tracker(name: str) -> None:
    """Refuse an unknown tracker, or one whose package is not installed (accelerate would drop it silently)."""
    if name not in TRACKERS:
        raise one_of("--log-with tracker", name, list(TRACKERS))
    package = TRACKERS[name]
    if importlib.util.find_spec(package) is None:
        raise BenchError(f"--log-with {name} needs the {package} package: pip install {package} "
                         f"(or pip install 'accelerate-bench[{name}]')")


def tracking_for(name: str, run_dir: Path) -> dict[str, str]:
    """What a cell carries to its worker: the tracker, the project (the run) and the local folder."""
    return {"log_with": name, "project": run_dir.name, "dir": str((run_dir / "trackers").absolute())}


def accelerator_kwargs(tracking: dict[str, str] | None) -> dict[str, Any]:
    """The Accelerator's tracker arguments for a cell (none without --log-with)."""
    if not tracking:
        return {}
    return {"log_with": tracking["log_with"], "project_dir": tracking["dir"]}


def log_result(accelerator, tracking: dict[str, str], result: dict[str, Any]) -> None:
    """Send a trained cell's result to the tracker, from the main process; the worker's
    `accelerator.end_training()` closes it."""
    name, cell_id = tracking["log_with"], result["cell"]["id"]
    Path(tracking["dir"]).mkdir(parents=True, exist_ok=True)
    if name == "tensorboard":  # one folder per cell under the run's trackers/
        project, init_kwargs = cell_id, {}
    else:  # one project per run, one tracker run per cell
        project, init_kwargs = tracking["project"], {name: _run_name_kwargs(name, cell_id, tracking["dir"])}
    if name == "mlflow":
        os.environ.setdefault("MLFLOW_TRACKING_URI", (Path(tracking["dir"]) / "mlruns").as_uri())
    accelerator.init_trackers(project, config=hyperparameters(result), init_kwargs=init_kwargs)
    metric_keys = [k for k in (result["curve"][0] if result["curve"] else {}) if k not in _PLACING]
    for point in result["curve"]:
        values = {f"val/{k}": point[k] for k in metric_keys if _number(point.get(k))}
        values.update({"train/loss": point["train_loss"], "epoch": point["epoch"], "clock_s": point["seconds"]})
        # TensorBoard is given the evaluation's own date; the others date an entry when it is logged.
        accelerator.log(values, step=point["samples"], log_kwargs={"tensorboard": {"walltime": point["time_unix"]}})
    accelerator.log(final_values(result), step=result["samples_seen"])


def hyperparameters(result: dict[str, Any]) -> dict[str, bool | int | float | str]:
    """The cell's configuration, flat: what it ran (workload, topology, precision, seed, batch) and
    every workload parameter and budget limit. Unset values are left out; lists become JSON text."""
    cell = result["cell"]
    config: dict[str, Any] = {
        "workload": cell["workload"],
        "variant": cell["variant"],
        "topology": topology_label(cell["topology"]),
        "precision": cell["precision"],
        "seed": cell["seed"],
        "num_processes": (result.get("observed") or {}).get("num_processes"),
        "global_batch": result["batch"]["global"],
        "per_process_batch": result["batch"]["per_process"],
        **{f"budget.{k}": v for k, v in cell["budget"].items()},
        **{f"params.{k}": v for k, v in result["workload"]["params"].items()},
    }
    return {k: v if isinstance(v, (bool, int, float, str)) else json.dumps(v) for k, v in config.items() if v is not None}


def final_values(result: dict[str, Any]) -> dict[str, float]:
    """The trained model's metrics per split (`final/test/f1`...) and the cell's headline numbers."""
    values = {f"final/{key}": value for key, value in _flat(result.get("metrics") or {}).items()}
    timings = result["timings"]
    headline = {
        "final/converged": float(result["status"] == "converged"),
        "final/time_to_target_s": timings.get("time_to_target_s"),
        "final/train_seconds": timings.get("train_seconds"),
        "final/samples_per_s": (result.get("throughput") or {}).get("samples_per_s"),
    }
    values.update({k: v for k, v in headline.items() if _number(v)})
    return values


def _flat(tree: dict[str, Any], prefix: str = "") -> dict[str, float]:
    flat: dict[str, float] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}/"))
        elif _number(value):
            flat[f"{prefix}{key}"] = value
    return flat


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)


def _run_name_kwargs(name: str, cell_id: str, folder: str) -> dict[str, str]:
    """The tracker's own arguments that name its run after the cell (and keep wandb's files in the run)."""
    if name == "wandb":
        return {"name": cell_id, "dir": folder}
    if name == "mlflow":
        return {"run_name": cell_id}
    return {"name": cell_id}  # trackio
