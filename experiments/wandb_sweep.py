"""W&B sweeps: export a sweep's grid as a ``wandb sweep`` config, and map an agent's parameters
back onto the planned runs (``python -m experiments sweep <spec> --from-wandb``).

``--launcher wandb-export`` writes the config (:func:`wandb_sweep_config`); each agent call then
runs one pretraining run and its transfers with the local launcher (:mod:`experiments.launchers`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from datamodules.errors import UserInputError
from experiments.config import REPO_ROOT
from experiments.sweep_spec import PlannedRun, SweepSpec

ZIP_PARAM = "zip_index"


def wandb_sweep_config(
    spec: SweepSpec,
    spec_path: str,
    runs: Sequence[PlannedRun],
    extra_overrides: Sequence[str],
    transfer_overrides: Sequence[str] = (),
) -> dict:
    """A ``wandb sweep`` config: method grid over the spec's axes; the agent calls this verb.

    Zipped axes move together, which a W&B grid cannot express, so they travel as one parameter
    ``zip_index`` (the row of the zip lists). Each agent call runs one pretraining run and its
    transfers: ``python -m experiments sweep <spec> <params as key=value> --from-wandb``.
    """
    clash = {o.split("=", 1)[0] for o in extra_overrides} & ({*spec.grid, "seed", ZIP_PARAM})
    if clash:
        raise UserInputError(f"overrides also swept by the spec: {', '.join(sorted(clash))}")
    parameters: dict[str, dict] = {key: {"values": list(v)} for key, v in spec.grid.items()}
    if spec.zip:
        parameters[ZIP_PARAM] = {"values": sorted({r.zip_index for r in runs})}
    parameters["seed"] = {"values": list(spec.seeds)}
    command = ["${env}", "${interpreter}", "-m", "experiments", "sweep", str(spec_path)]
    # argparse takes the positional key=value items only before the options
    command += [*extra_overrides, "${args_no_hyphens}", "--from-wandb"]
    if transfer_overrides:
        command += ["--transfer-set", *transfer_overrides]
    return {
        "name": spec.name,
        "method": "grid",
        "program": str(REPO_ROOT / "experiments" / "__main__.py"),
        "command": command,
        "parameters": parameters,
        "description": f"{len(runs)} pretraining runs from {spec_path}"
        + (f"; zip_index rows: {dict(spec.zip)}" if spec.zip else ""),
    }


def _canon(value: Any) -> str:
    """Compare a value from the spec with W&B's text form of it (``str(value)``)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return repr(float(value))
    if isinstance(value, list | tuple):
        return "[" + ",".join(_canon(v) for v in value) + "]"
    text = str(value).strip()
    if text.lower() in ("true", "false"):
        return text.lower()
    try:
        return repr(float(text))
    except ValueError:
        pass
    if text.startswith("[") and text.endswith("]"):
        return "[" + ",".join(_canon(v) for v in text[1:-1].split(",") if v.strip()) + "]"
    return text


def split_wandb_args(spec: SweepSpec, items: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """Separate an agent's ``key=value`` items into sweep parameters and plain run overrides."""
    swept = {*spec.grid, "seed", ZIP_PARAM}
    params: dict[str, str] = {}
    overrides: list[str] = []
    for item in items:
        if "=" not in item:
            raise UserInputError(f"'{item}' must look like key=value")
        key, value = item.lstrip("-").split("=", 1)
        if key in swept:
            params[key] = value
        else:
            overrides.append(item)
    return params, overrides


def select_run(spec: SweepSpec, runs: Sequence[PlannedRun], params: dict[str, Any]) -> PlannedRun:
    """The planned run whose axes equal the W&B parameters (values compared as text)."""
    expected = {*spec.grid, "seed"} | ({ZIP_PARAM} if spec.zip else set())
    missing = expected - set(params)
    if missing:
        raise UserInputError(f"W&B parameters lack {', '.join(sorted(missing))}")
    unknown = set(params) - expected
    if unknown:
        raise UserInputError(
            f"W&B parameters {', '.join(sorted(unknown))} are not axes of sweep {spec.name}; "
            f"axes: {', '.join(sorted(expected))}"
        )
    for run in runs:
        if spec.zip and _canon(run.zip_index) != _canon(params[ZIP_PARAM]):
            continue
        if all(_canon(run.axes[k]) == _canon(params[k]) for k in (*spec.grid, "seed")):
            return run
    raise UserInputError(f"no run of sweep {spec.name} has the parameters {params}")


def params_from_wandb_config() -> dict[str, Any]:
    """The current W&B run's config (inside ``wandb agent`` when no key=value args came)."""
    import wandb

    run = wandb.init()
    params = dict(run.config)
    wandb.finish()
    return params
