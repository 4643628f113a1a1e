"""`pretrain ... ckpt_path=<file>`: resume from, or fork from, a chosen checkpoint (issue 13).

Real tiny pretraining runs on the in-memory fake datamodule: a run that crashed at step 20 is
continued in place and forked into a new run, and both end exactly where the uninterrupted
run ends; names, records and the one-line errors are checked on the way.
"""

import json
import os
import shutil
import time
from pathlib import Path

import pytest
import torch

from datamodules.errors import UserInputError
from experiments import resume
from experiments.__main__ import main
from experiments.config import load_config
from experiments.pretrain import default_run_name, run_pretrain
from experiments.rundir import RunDir
from tests.fake_data import fake_datamodule, tiny_overrides

STEPS = 40  # of 32 images; checkpoints every 10 steps
CRASH_AT = 20


def _cfg(runs, name: str, *extra: str):
    return load_config(None, [*tiny_overrides(runs, name, STEPS * 32, every=10), *extra])


def _crashing(step: int):
    """The fake datamodule, raising once training reaches ``step`` (its checkpoint is saved)."""
    dm = fake_datamodule()
    original = dm.on_after_batch_transfer

    def hook(batch, dataloader_idx):
        if dm.trainer.training and dm.trainer.global_step >= step:
            raise RuntimeError("simulated crash")
        return original(batch, dataloader_idx)

    dm.on_after_batch_transfer = hook
    return dm


def _crash(cfg, step: int) -> RunDir:
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_pretrain(cfg, _crashing(step))
    run = RunDir(Path(cfg.runs_dir) / cfg.name)
    assert run.last_checkpoint() is not None and not run.is_complete()
    return run


def _weights(run_dir) -> dict:
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    return ckpt["state_dict"]


def _assert_same_end(metrics: dict, reference: dict, run_dir, reference_dir) -> None:
    assert metrics["images_seen"] == reference["images_seen"] == STEPS * 32
    for key in ("loss", "precision_at_1", "precision_at_5"):
        assert metrics["final"][key] == pytest.approx(reference["final"][key], abs=1e-6)
    a, b = _weights(run_dir), _weights(reference_dir)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """An uninterrupted reference run, a run that crashed at step 20, a copy of its checkpoint."""
    torch.set_num_threads(1)
    base = tmp_path_factory.mktemp("ckpt_path")
    runs = str(base / "runs")
    ref_dir = run_pretrain(_cfg(runs, "reference"), fake_datamodule())
    crashed = _crash(_cfg(runs, "crashed"), CRASH_AT)
    saved = base / "saved" / "step20.ckpt"
    saved.parent.mkdir()
    shutil.copy(crashed.checkpoints / "last.ckpt", saved)
    return {
        "runs": runs,
        "reference_dir": ref_dir,
        "reference": json.loads((ref_dir / "metrics.json").read_text()),
        "crashed": crashed,
        "saved": saved,
    }


@pytest.mark.slow
def test_resume_in_place_and_fork_continue_exactly(world, capsys):
    torch.set_num_threads(1)
    runs, crashed, ref_dir = world["runs"], world["crashed"], world["reference_dir"]
    parent_ckpt = crashed.checkpoints / "last.ckpt"
    assert torch.load(parent_ckpt, weights_only=True)["global_step"] == CRASH_AT
    capsys.readouterr()

    # fork: another run's checkpoint, no name= -> a new run named after the config + the fork
    cfg = _cfg(runs, "", f"ckpt_path={parent_ckpt}")
    base = default_run_name(cfg)
    fork_dir = run_pretrain(cfg, fake_datamodule())
    assert fork_dir.name.startswith(f"{base}_fork-step{CRASH_AT}-")
    out = capsys.readouterr().out
    assert f"forking {parent_ckpt.resolve()} (step {CRASH_AT}) -> {fork_dir}" in out
    fork = json.loads((fork_dir / "metrics.json").read_text())
    _assert_same_end(fork, world["reference"], fork_dir, ref_dir)
    assert fork["started_from"] == {
        "mode": "fork",
        "checkpoint": str(parent_ckpt.resolve()),
        "global_step": CRASH_AT,
        "run": "crashed",
    }
    assert load_config(fork_dir / "config.yaml").ckpt_path == str(parent_ckpt)
    assert not crashed.is_complete()  # the parent is untouched

    # the same fork command again: the same folder, complete, nothing retrained
    mtime = (fork_dir / "metrics.json").stat().st_mtime
    assert run_pretrain(_cfg(runs, "", f"ckpt_path={parent_ckpt}"), fake_datamodule()) == fork_dir
    assert (fork_dir / "metrics.json").stat().st_mtime == mtime

    # resume: the checkpoint lies in this run's own unfinished folder -> continue there
    resumed_dir = run_pretrain(_cfg(runs, "crashed", f"ckpt_path={parent_ckpt}"), fake_datamodule())
    assert resumed_dir == crashed.path
    resumed = json.loads((resumed_dir / "metrics.json").read_text())
    _assert_same_end(resumed, world["reference"], resumed_dir, ref_dir)
    assert resumed["started_from"]["mode"] == "resume" and resumed["name"] == "crashed"


@pytest.mark.slow
def test_fork_rerun_after_a_crash_continues_its_own_checkpoint(world, capsys):
    torch.set_num_threads(1)
    runs, parent = world["runs"], world["saved"]

    # an explicit name=: the fork goes exactly there; it crashes at step 30 ...
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_pretrain(_cfg(runs, "mine", f"ckpt_path={parent}"), _crashing(30))
    mine = RunDir(Path(runs) / "mine")
    assert torch.load(mine.last_checkpoint(), weights_only=True)["global_step"] == 30
    capsys.readouterr()
    # ... and the same command continues from the fork's own step 30, not the parent's step 20
    run_pretrain(_cfg(runs, "mine", f"ckpt_path={parent}"), fake_datamodule())
    assert "forking" not in capsys.readouterr().out
    metrics = json.loads(mine.metrics_path.read_text())
    _assert_same_end(metrics, world["reference"], mine.path, world["reference_dir"])
    assert metrics["started_from"]["global_step"] == CRASH_AT
    assert metrics["started_from"]["run"] == "saved"

    # a longer schedule: the fork trains on to its own end
    longer = run_pretrain(
        _cfg(runs, "longer", f"ckpt_path={parent}", f"schedule.images_seen={50 * 32}"),
        fake_datamodule(),
    )
    metrics = json.loads((longer / "metrics.json").read_text())
    assert metrics["images_seen"] == 50 * 32 and metrics["schedule"]["total_steps"] == 50

    # what the restored state cannot follow is one error line, before any folder is made
    with pytest.raises(UserInputError, match=r"optim\.base_lr \(0\.4 -> 0\.2\)"):
        run_pretrain(_cfg(runs, "x", f"ckpt_path={parent}", "optim.base_lr=0.2"), None)
    assert not (Path(runs) / "x").exists()
    with pytest.raises(UserInputError, match="past the end of this schedule"):
        run_pretrain(
            _cfg(runs, "y", f"ckpt_path={parent}", "schedule.images_seen=320"), fake_datamodule()
        )
    # a folder holding a different run is never mixed into
    with pytest.raises(UserInputError, match="complete run that did not start from"):
        run_pretrain(_cfg(runs, "reference", f"ckpt_path={parent}"), fake_datamodule())


def test_bad_ckpt_path_is_one_line(tmp_path, capsys):
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint")
    weights = tmp_path / "weights.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, weights)
    for path, expected in [
        (tmp_path / "missing.ckpt", "no such file"),
        (garbage, "cannot read the checkpoint"),
        (weights, "not a pretraining checkpoint"),
    ]:
        code = main(
            [
                "pretrain",
                "configs/pretrain/tiny_cpu.yaml",
                f"runs_dir={tmp_path / 'r'}",
                f"ckpt_path={path}",
            ]
        )
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and expected in err, err
        assert f"ckpt_path={path}" in err
    assert not (tmp_path / "r").exists()


def _parent(path, step=7) -> resume.Parent:
    return resume.Parent(path=path.resolve(), global_step=step, config={})


def test_run_name_resume_or_fork(tmp_path):
    runs = tmp_path / "runs"
    own = RunDir.create(runs, "a")
    ckpt = own.checkpoints / "last.ckpt"
    ckpt.write_bytes(b"")
    other = tmp_path / "elsewhere.ckpt"
    p_own, p_other = _parent(ckpt), _parent(other)
    assert resume.run_name(str(runs), "a", False, p_own) == ("a", "resume")
    assert resume.run_name(str(runs), "a", True, p_own) == ("a", "resume")
    fork_name = f"a_fork-{p_other.tag}"
    assert resume.run_name(str(runs), "a", False, p_other) == (fork_name, "fork")
    assert resume.run_name(str(runs), "b", True, p_other) == ("b", "fork")  # name= wins
    # a complete run is never reopened: its own checkpoint forks, even with name= given
    own.write_metrics({"status": "complete"})
    assert resume.run_name(str(runs), "a", True, p_own) == (f"a_fork-{p_own.tag}", "fork")
    # the tag follows the checkpoint's path and step
    assert p_other.tag.startswith("step7-") and _parent(other, 8).tag != p_other.tag
    assert _parent(tmp_path / "x.ckpt").tag != p_other.tag


def test_start_checkpoint_prefers_own_progress_since_the_same_start(tmp_path):
    run = RunDir.create(tmp_path, "f")
    parent = _parent(tmp_path / "parent.ckpt")
    assert resume.start_checkpoint(run, parent, None, "fork") == parent.path
    assert resume.started_from(run) == parent.record("fork")
    own = run.checkpoints / "last.ckpt"
    own.write_bytes(b"")
    marker = run.started_from_path.stat().st_mtime
    os.utime(own, (marker + 5, marker + 5))  # written after the start: the run's progress
    assert resume.start_checkpoint(run, parent, own, "fork") == own
    os.utime(own, (marker - 5, marker - 5))  # older than the start (a roll-back in place)
    assert resume.start_checkpoint(run, parent, own, "resume") == parent.path
    # a different parent: in place it is a new start; a fork folder must not mix two runs
    other = _parent(tmp_path / "other.ckpt")
    time.sleep(0.01)
    with pytest.raises(UserInputError, match="did not start from"):
        resume.start_checkpoint(run, other, own, "fork")
    assert resume.start_checkpoint(run, other, own, "resume") == other.path
    assert resume.started_from(run)["checkpoint"] == str(other.path)


def test_incompatible_keys_allow_schedule_and_trainer_only():
    old = {
        "seed": 0,
        "optim": {"base_lr": 0.1},
        "schedule": {"images_seen": 10, "accumulate": 1},
        "trainer": {"devices": 1, "precision": "32-true"},
        "data": {"loading": {"num_workers": 2}},
    }
    new = {
        "seed": 0,
        "optim": {"base_lr": 0.1},
        "schedule": {"images_seen": 99, "accumulate": 1},
        "trainer": {"devices": 1, "precision": "bf16-mixed"},
        "data": {"loading": {"num_workers": 8}},
        "ckpt_path": "x",
    }
    assert resume.incompatible_keys(old, new) == []
    new["schedule"]["accumulate"], new["seed"], new["trainer"]["devices"] = 2, 1, 4
    assert resume.incompatible_keys(old, new) == [
        "schedule.accumulate (1 -> 2)",
        "seed (0 -> 1)",
        "trainer.devices (1 -> 4)",
    ]
