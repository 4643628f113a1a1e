"""Sweep specs, run names, resumable launching (local and submitit), W&B export round trip."""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import pytest
import submitit
import yaml

from datamodules.errors import UserInputError
from experiments import launchers, sweep, wandb_sweep
from experiments.config import CONFIGS_DIR, load_config
from experiments.rundir import RunDir
from experiments.sweep_spec import (
    expand,
    human_count,
    load_spec,
    scale_token,
    vocab_token,
)

BASE = """
seed: 0
data:
  source:
    name: synthetic
    num_images: 400
model:
  name: rx-tiny
schedule:
  images_seen: 1000
"""

TRANSFER = """
transfer:
  protocol: linear
  target: synthetic_in
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def configs(tmp_path: Path) -> dict[str, Path]:
    return {
        "base": write(tmp_path / "base.yaml", BASE),
        "transfer": write(tmp_path / "linear.yaml", TRANSFER),
        "runs": tmp_path / "runs",
    }


def spec_file(tmp_path: Path, configs: dict, body: str) -> Path:
    text = f"base: {configs['base']}\nruns_dir: {configs['runs']}\n" + body
    return write(tmp_path / "spec.yaml", text)


def fake_runner(task: launchers.Task) -> None:
    """A real run stand-in: writes config.yaml and a complete metrics.json via RunDir.

    It fails (raises) when the run's overrides contain `fail=` in the name, or when a file
    `<runs_dir>/FAIL_<name>` exists, so tests can make chosen runs fail.
    """
    run = RunDir.create(task.runs_dir, task.name)
    cfg = load_config(task.config, list(task.overrides))
    if (Path(task.runs_dir) / f"FAIL_{task.name}").exists():
        raise RuntimeError(f"chosen failure of {task.name}")
    with open(Path(task.runs_dir) / "calls.txt", "a") as log:
        log.write(task.name + "\n")
    run.write_config(cfg)
    if task.kind == "pretrain":
        metrics = {
            "status": "complete",
            "kind": "pretrain",
            "name": task.name,
            "axes": {"scale": cfg.data.write.scale, "seed": cfg.seed, "model": cfg.model.name},
            "images_seen": cfg.schedule.images_seen,
        }
    else:
        metrics = {
            "status": "complete",
            "kind": "transfer",
            "name": task.name,
            "pretrain_run": Path(cfg.transfer.pretrained).name,
            "top1": 0.5,
        }
    run.write_metrics(metrics)


def args_for(spec: Path, *extra: str, **kw) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    sweep.add_arguments(parser)
    ns = parser.parse_args([str(spec), *extra])
    for k, v in kw.items():
        setattr(ns, k, v)
    return ns


def calls(runs_dir: Path) -> list[str]:
    path = runs_dir / "calls.txt"
    return path.read_text().split() if path.exists() else []


# ---------------------------------------------------------------------------------------------


def test_short_forms():
    assert human_count(35_000_000) == "35M"
    assert human_count(3_500_000_000) == "3.5B"
    assert human_count(8_500) == "8.5k"
    assert human_count(640) == "640"
    assert scale_token(0.1) == "10pct"
    assert scale_token(1.0) == "100pct"
    assert scale_token(35e6) == "35M"
    assert vocab_token("wordnet", 0) == "wordnet"
    assert vocab_token("wordnet", 17000) == "17k"
    assert vocab_token("in1k", 500) == "in1k-500"


def test_grid_and_zip_expansion_with_names(tmp_path, configs):
    spec_path = spec_file(
        tmp_path,
        configs,
        """
grid:
  data.write.scale: [10000, 0.5]
  data.loading.sampling: [natural, sqrt]
zip:
  model.name: [rx-a, rx-b]
  model.width_per_group: [2, 4]
seeds: [0, 1]
value_names:
  data.vocab.name: {wordnet: 17k}
transfers:
  - config: linear.yaml
    overrides: [transfer.target=synthetic_in]
""",
    )
    spec = load_spec(spec_path)
    runs = expand(spec)
    assert len(runs) == 2 * 2 * 2 * 2
    names = [r.name for r in runs]
    assert len(set(names)) == len(names)
    # zip rows move together; width is not repeated in the name because model.name covers it
    assert names[0] == "rx-a_data-10k_vocab-17k_samp-natural_noise-0_seed-0"
    assert names[1] == "rx-a_data-10k_vocab-17k_samp-natural_noise-0_seed-1"
    assert "rx-b_data-50pct_vocab-17k_samp-sqrt_noise-0_seed-1" in names
    for run in runs:
        cfg = run.config()
        assert cfg.name == run.name
        assert cfg.runs_dir == str(configs["runs"])
        assert (cfg.model.name, cfg.model.width_per_group) in {("rx-a", 2), ("rx-b", 4)}
        assert cfg.data.write.scale == run.axes["data.write.scale"]
        assert cfg.seed == run.axes["seed"]
        (tr,) = run.transfers
        assert tr.name == f"{run.name}__linear"
        tcfg = load_config(tr.config, list(tr.overrides))
        assert tcfg.transfer.pretrained == str(configs["runs"] / run.name)
        assert tcfg.seed == run.axes["seed"]


def test_swept_key_outside_name_keys_is_appended(tmp_path, configs):
    spec = load_spec(spec_file(tmp_path, configs, "grid:\n  model.loss: [softmax, sigmoid]\n"))
    assert [r.name for r in expand(spec)] == [
        "rx-tiny_data-100pct_vocab-wordnet_samp-sqrt_noise-0_loss-softmax_seed-0",
        "rx-tiny_data-100pct_vocab-wordnet_samp-sqrt_noise-0_loss-sigmoid_seed-0",
    ]


def test_bad_specs_say_what_to_fix(tmp_path, configs):
    with pytest.raises(UserInputError, match="unknown config key 'gridd'.*valid keys.*grid"):
        load_spec(spec_file(tmp_path, configs, "gridd: {}\n"))
    with pytest.raises(UserInputError, match="equal lengths"):
        load_spec(spec_file(tmp_path, configs, "zip:\n  seed_x: [1]\n  model.name: [a, b]\n"))
    clash = "grid:\n  data.loading.sampling: [natural, sqrt]\nvalue_names:\n  data.loading.sampling: {natural: x, sqrt: x}\n"
    with pytest.raises(UserInputError, match="same run name"):
        expand(load_spec(spec_file(tmp_path, configs, clash)))
    with pytest.raises(UserInputError, match="not a run config key|unknown config key"):
        expand(load_spec(spec_file(tmp_path, configs, "grid:\n  data.nope: [1]\n")))


def test_interrupted_sweep_reruns_only_the_rest(tmp_path, configs, capsys):
    spec_path = spec_file(
        tmp_path,
        configs,
        "grid:\n  data.write.scale: [100, 200, 300]\ntransfers:\n  - config: linear.yaml\n",
    )
    runs_dir = configs["runs"]
    names = [r.name for r in expand(load_spec(spec_path))]
    runs_dir.mkdir(parents=True)
    (runs_dir / f"FAIL_{names[1]}").touch()  # chosen failures: the 2nd and 3rd runs
    (runs_dir / f"FAIL_{names[2]}").touch()

    rc = sweep.run(args_for(spec_path), runner=fake_runner)
    out = capsys.readouterr().out
    assert rc == 1
    assert "done 2/6" in out and "failed 4" in out
    assert f"  failed: {names[1]} (log: {runs_dir / names[1] / 'sweep.log'})" in out
    log = runs_dir / names[2] / "sweep.log"
    assert f"  pretraining failed: {names[2]}__linear (log: {log})" in out
    assert "chosen failure" in log.read_text()
    assert calls(runs_dir) == [names[0], f"{names[0]}__linear"]
    # a checkpoint left by the failed run: the rerun counts it as resumed
    (runs_dir / names[1] / "checkpoints" / "last.ckpt").write_bytes(b"x")

    (runs_dir / f"FAIL_{names[1]}").unlink()
    (runs_dir / f"FAIL_{names[2]}").unlink()
    (runs_dir / "calls.txt").unlink()
    rc = sweep.run(args_for(spec_path), runner=fake_runner)
    out = capsys.readouterr().out
    assert rc == 0
    assert calls(runs_dir) == [names[1], f"{names[1]}__linear", names[2], f"{names[2]}__linear"]
    assert "done 6/6 (2 already complete, 1 resumed, 1 rerun after a failure)" in out
    assert "failed 0" in out
    manifest = json.loads((runs_dir / "_sweeps" / "spec.json").read_text())
    assert [r["name"] for r in manifest["runs"]] == names


def test_submitit_local_executor_runs_a_two_run_sweep(tmp_path, configs, capsys):
    spec_path = spec_file(tmp_path, configs, "seeds: [0, 1]\n")
    rc = sweep.run(args_for(spec_path, "--launcher", "submitit-local"), runner=fake_runner)
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "done 2/2" in out
    for run in expand(load_spec(spec_path)):
        metrics = RunDir(run.run_dir).read_metrics()
        assert metrics["status"] == "complete" and metrics["axes"]["seed"] == run.axes["seed"]
    assert list((configs["runs"] / "_sweeps" / "spec" / "submitit").glob("*_result.pkl"))


def test_slurm_executor_gets_one_task_per_gpu(tmp_path, configs, monkeypatch):
    spec = load_spec(
        spec_file(
            tmp_path,
            configs,
            "slurm:\n  partition: learnfair\n  gpus_per_node: 8\n  nodes: 2\n  mem_gb: 400\n",
        )
    )
    with pytest.raises(UserInputError, match="needs a SLURM cluster"):
        launchers.make_executor("slurm", tmp_path / "slurm", spec.slurm, "wsl")
    # pretend to be on a cluster (no srun here) and read the sbatch script submitit would write
    monkeypatch.setattr(submitit.SlurmExecutor, "affinity", classmethod(lambda cls: 1))
    executor = launchers.make_executor("slurm", tmp_path / "slurm", spec.slurm, "wsl")
    text = executor._executor._make_submission_file_text("python -c pass", "0")
    for line in (
        "--partition=learnfair",
        "--nodes=2",
        "--ntasks-per-node=8",
        "--gpus-per-node=8",
        "--mem=400GB",
        "--time=4320",
    ):
        assert line in text, line
    assert sweep.slurm_overrides(spec) == [
        "trainer.devices=8",
        "trainer.num_nodes=2",
        "trainer.strategy=ddp",
    ]


def test_dry_run_prints_runs_images_and_transfers(tmp_path, configs, capsys):
    spec_path = spec_file(
        tmp_path,
        configs,
        "grid:\n  data.loading.label_noise: [0.0, 0.25]\ntransfers:\n  - config: linear.yaml\n",
    )
    assert sweep.run(args_for(spec_path, "schedule.images_seen=0", "--dry-run")) == 0
    out = capsys.readouterr().out
    assert "2 pretraining runs, 2 transfer runs" in out
    assert "rx-tiny_data-100pct_vocab-wordnet_samp-sqrt_noise-25_seed-0" in out
    assert "-> rx-tiny_data-100pct_vocab-wordnet_samp-sqrt_noise-25_seed-0__linear" in out
    # 400 synthetic images, 5% val -> 380 train; the heuristic clamps to 120 epochs
    assert "~45,600 (heuristic, ~380 train images)" in out
    assert not configs["runs"].exists()


def test_wandb_export_round_trips_onto_the_config(tmp_path, configs, capsys):
    spec_path = spec_file(
        tmp_path,
        configs,
        """
grid:
  data.write.scale: [35000000.0, 0.1]
  data.loading.sampling: [sqrt, uniform]
zip:
  model.name: [rx-a, rx-b]
  model.width_per_group: [2, 4]
seeds: [0, 3]
""",
    )
    out = tmp_path / "wandb.yaml"
    rc = sweep.run(
        args_for(
            spec_path,
            "optim.base_lr=0.2",
            "--launcher",
            "wandb-export",
            "--out",
            str(out),
            "--transfer-set",
            "a.b=1",
            "c=2",
        )
    )
    assert rc == 0
    exported = yaml.safe_load(out.read_text())
    assert exported["method"] == "grid"
    cmd = exported["command"]
    assert cmd[-5:] == ["${args_no_hyphens}", "--from-wandb", "--transfer-set", "a.b=1", "c=2"]
    fixed = cmd[cmd.index(str(spec_path)) + 1 : -5]
    params = exported["parameters"]
    keys = list(params)
    spec = load_spec(spec_path)
    planned = expand(spec, ["optim.base_lr=0.2"])
    reached = set()
    for combo in itertools.product(*(params[k]["values"] for k in keys)):
        # what the agent passes: ${args_no_hyphens} is `key=value` with str(value)
        agent_args = [f"{k}={v}" for k, v in zip(keys, combo)]
        wb_params, overrides = wandb_sweep.split_wandb_args(spec, [*fixed, *agent_args])
        assert overrides == ["optim.base_lr=0.2"]
        run = wandb_sweep.select_run(spec, planned, wb_params)
        cfg = run.config()
        assert cfg.optim.base_lr == 0.2
        assert cfg.data.loading.sampling == wb_params["data.loading.sampling"]
        assert cfg.data.write.scale == float(wb_params["data.write.scale"])
        assert cfg.seed == int(wb_params["seed"])
        assert cfg.model.name == ["rx-a", "rx-b"][int(wb_params["zip_index"])]
        assert cfg.model.width_per_group == [2, 4][int(wb_params["zip_index"])]
        reached.add(run.name)
    assert reached == {r.name for r in planned}


def test_from_wandb_runs_exactly_the_selected_point(tmp_path, configs, capsys):
    spec_path = spec_file(
        tmp_path, configs, "grid:\n  data.write.scale: [100, 200]\nseeds: [0, 1]\n"
    )
    rc = sweep.run(
        args_for(spec_path, "data.write.scale=200", "seed=1", "--from-wandb"), runner=fake_runner
    )
    assert rc == 0
    assert calls(configs["runs"]) == ["rx-tiny_data-200_vocab-wordnet_samp-sqrt_noise-0_seed-1"]
    with pytest.raises(UserInputError, match="lack seed"):
        sweep.run(args_for(spec_path, "data.write.scale=200", "--from-wandb"), runner=fake_runner)


SHIPPED = sorted((CONFIGS_DIR / "sweeps").glob("[!_]*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_sweeps_expand(path):
    spec = load_spec(path)
    runs = expand(spec, ["data.source.manifest=/data/manifest.jsonl"])
    assert len({r.name for r in runs}) == len(runs) >= 2
    extra = [len(r.transfers) - len(spec.transfers) for r in runs]  # baselines, once per seed
    assert len(spec.transfers) >= 1 and all(n >= 0 for n in extra)
    assert sum(extra) == len(spec.seeds) * len(spec.baselines)


def test_baselines_run_once_per_seed_after_that_seeds_first_run(tmp_path, configs):
    """`baselines:` adds one random-init transfer per seed (pretrained= empty, the transfer
    config's model in its name), carried by the first pretraining run of that seed."""
    spec_path = spec_file(
        tmp_path,
        configs,
        """
grid:
  data.write.scale: [0.5, 1.0]
seeds: [0, 1]
transfers:
  - config: linear.yaml
baselines:
  - config: linear.yaml
    label: lin-bn
    overrides: [transfer.bn_recalibrate=true]
""",
    )
    runs = expand(load_spec(spec_path))
    carried = {
        r.name.replace("_samp-sqrt_noise-0", ""): [t.name for t in r.transfers[1:]] for r in runs
    }
    assert carried == {
        "rx-tiny_data-50pct_vocab-wordnet_seed-0": ["random-rx-tiny__lin-bn_seed-0"],
        "rx-tiny_data-50pct_vocab-wordnet_seed-1": ["random-rx-tiny__lin-bn_seed-1"],
        "rx-tiny_data-100pct_vocab-wordnet_seed-0": [],
        "rx-tiny_data-100pct_vocab-wordnet_seed-1": [],
    }
    baseline = runs[1].transfers[1]
    cfg = load_config(baseline.config, list(baseline.overrides))
    assert cfg.transfer.pretrained == "" and cfg.transfer.bn_recalibrate is True
    assert cfg.seed == 1 and cfg.name == "random-rx-tiny__lin-bn_seed-1"
    assert cfg.runs_dir == str(configs["runs"])


def test_a_swept_architecture_reaches_the_probes_of_its_runs():
    """width_mini sweeps model.name / model.width_per_group; its probes' own config names
    rx-tiny, and transfer refuses a checkpoint of another width (all 12 narrow probes of the
    first mini run failed so). The point's architecture keys go to its transfers; other keys
    (data, seed) and the random baselines' models stay the transfer config's."""
    runs = expand(load_spec(CONFIGS_DIR / "sweeps" / "width_mini.yaml"))
    narrow = next(r for r in runs if r.axes["model.width_per_group"] == 2)
    probe = next(t for t in narrow.transfers if "__lin-synin" in t.name and "random" not in t.name)
    assert "model.name=rx-tiny-2d" in probe.overrides
    assert "model.width_per_group=2" in probe.overrides
    assert not any(o.startswith("data.") for o in probe.overrides)
    cfg = load_config(CONFIGS_DIR / "transfer" / "linear_synthetic_in.yaml", list(probe.overrides))
    assert (cfg.model.name, cfg.model.width_per_group) == ("rx-tiny-2d", 2)
    baselines = [t for r in runs for t in r.transfers if t.name.startswith("random-")]
    assert baselines and not any("model.width_per_group=2" in t.overrides for t in baselines)
