"""One launcher vocabulary for prepare and sweep (issue 16), and the shared submitit helper."""

from __future__ import annotations

import argparse

import pytest

from datamodules import launch
from datamodules.errors import UserInputError
from experiments import launchers, sweep
from experiments import prepare as prepare_cli
from experiments.sweep_spec import SlurmSpec


def _launcher_action(add_arguments) -> argparse.Action:
    parser = argparse.ArgumentParser(prog="verb")
    add_arguments(parser)
    (action,) = [a for a in parser._actions if a.dest == "launcher"]
    return parser, action


def test_prepare_and_sweep_take_the_same_launcher_names():
    _, prep = _launcher_action(prepare_cli.add_arguments)
    _, swp = _launcher_action(sweep.add_arguments)
    assert tuple(prep.choices) == launch.LAUNCHERS == ("local", "submitit-local", "slurm")
    assert tuple(c for c in swp.choices if c != "wandb-export") == tuple(prep.choices)
    assert prep.default == swp.default == "local"


def test_old_process_name_fails_with_one_line_naming_local(capsys):
    parser, _ = _launcher_action(prepare_cli.add_arguments)
    with pytest.raises(SystemExit) as exit_:
        parser.parse_args(["config.yaml", "--launcher", "process"])
    assert exit_.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "argument --launcher" in error and "'process'" in error and "--launcher local" in error
    # the library refuses it too, with the same one line (the CLI prints it as `error: ...`)
    with pytest.raises(UserInputError) as err:
        launch.check_launcher("process")
    assert "\n" not in str(err.value) and "--launcher local" in str(err.value)
    with pytest.raises(UserInputError, match="is not known"):
        launch.check_launcher("pbs")


def test_prepare_slurm_parameters_are_unchanged():
    assert launch._prepare_parameters("slurm", {}) == {
        "timeout_min": 240,
        "cpus_per_task": 4,
        "slurm_array_parallelism": 256,
    }
    options = {"timeout_min": 30, "cpus_per_task": 2, "array_parallelism": 8, "partition": "p"}
    assert launch._prepare_parameters("slurm", options) == {
        "timeout_min": 30,
        "cpus_per_task": 2,
        "slurm_array_parallelism": 8,
        "slurm_partition": "p",
    }
    assert launch._prepare_parameters("submitit-local", {}) == {"timeout_min": 60}


def test_sweep_slurm_parameters_are_unchanged():
    spec = SlurmSpec(
        partition="learnfair",
        gpus_per_node=8,
        nodes=2,
        mem_gb=400,
        account="acc",
        additional_parameters={"exclusive": "true"},
    )
    assert launchers.slurm_parameters(spec, "wsl") == {
        "name": "wsl",
        "nodes": 2,
        "gpus_per_node": 8,
        "tasks_per_node": 8,
        "cpus_per_task": 10,
        "timeout_min": 4320,
        "slurm_array_parallelism": 64,
        "slurm_signal_delay_s": 120,
        "mem_gb": 400,
        "slurm_partition": "learnfair",
        "slurm_account": "acc",
        "slurm_additional_parameters": {"exclusive": "true"},
    }
    cpu_only = launchers.slurm_parameters(SlurmSpec(gpus_per_node=0), "x")
    assert cpu_only["gpus_per_node"] == 0 and cpu_only["tasks_per_node"] == 1
    assert "mem_gb" not in cpu_only and "slurm_partition" not in cpu_only


def test_one_executor_helper_for_both(tmp_path):
    local = launch.submitit_executor("submitit-local", tmp_path / "a", {"timeout_min": 7})
    assert type(local).__name__ == "LocalExecutor"
    assert local.parameters["timeout_min"] == 7
    swept = launchers.make_executor("submitit-local", tmp_path / "b", SlurmSpec(), "x")
    assert type(swept).__name__ == "LocalExecutor"
    with pytest.raises(ValueError, match="no submitit executor"):
        launch.submitit_executor("local", tmp_path / "c", {"timeout_min": 1})
