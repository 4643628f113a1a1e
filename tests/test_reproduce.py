"""`python -m experiments reproduce <suite>`: the dry run's plan and time estimate, the results
folder built from run directories, and rebuilt from its per-run records alone."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from experiments import launchers, reproduce
from experiments.__main__ import main
from experiments.sweep_spec import expand, load_spec
from tests.test_results_tables import (
    SCALES,
    VOCABS,
    acc_of,
    pretrain_metrics,
    transfer_metrics,
    write_run,
)


def suite(tmp_path: Path, runs: Path, out: Path, seeds: str = "[0, 1, 2]", extra: str = "") -> Path:
    """A suite `t` in its own configs folder: one sweep of 2 scales x 3 seeds, a tables config."""
    configs = tmp_path / "configs"
    (configs / "sweeps").mkdir(parents=True)
    (configs / "tables").mkdir()
    (configs / "sweeps" / "scale_t.yaml").write_text(
        f"""
base: configs/pretrain/tiny_cpu.yaml
overrides:
  - schedule.images_seen=4000
  - logging.wandb=false
{extra}
grid:
  data.write.scale: [0.5, 1.0]
seeds: {seeds}
transfers:
  - config: configs/transfer/linear_synthetic_in.yaml
    label: lin
"""
    )
    (configs / "tables" / "t.yaml").write_text(
        f"""
runs_dir: {runs}
output_dir: {out}
tables:
  - name: scale
    sweep: scale_t
    rows: [images]
figures:
  - name: acc_vs_images
    sweep: scale_t
    x: images
    hue: ""
    logx: true
scaling:
  - name: scaling_scale
    sweep: scale_t
    hue: ""
    bootstrap: 100
findings_sweeps:
  scale: scale_t
"""
    )
    return configs


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    reproduce.add_arguments(parser)
    return parser.parse_intermixed_args(list(argv))


def test_dry_run_lists_every_run_and_estimates_from_measured_rates(tmp_path, capsys):
    runs = tmp_path / "runs"
    configs = suite(tmp_path, runs, tmp_path / "out")
    # nothing ran yet: no time to measure from, and the dry run says so
    assert reproduce.run(parse("t", "--dry-run", "--configs-dir", str(configs))) == 0
    out = capsys.readouterr().out
    assert (
        "sweep scale_t: 6 pretraining runs (6 new), 6 transfers (6 pending); estimated unknown"
        in out
    )
    assert out.count("images_seen 4,000  [new]") == 6 and "estimated time: unknown" in out
    # one complete run of the sweep's model timed at 100 images/s, one transfer at 30 s
    pm = pretrain_metrics("timed", vocab="in1k", images=1000.0, seed=9)
    pm.update(images_seen=8000, wall_s=80.0)
    pm["axes"]["model"] = "rx-tiny"
    write_run(runs, pm)
    write_run(runs, {**transfer_metrics("timed__lin", pm, 0.5, 9), "wall_s": 30.0})
    assert reproduce.run(parse("t", "--dry-run", "--configs-dir", str(configs))) == 0
    out = capsys.readouterr().out
    # 6 x 4000 images at 100/s = 240 s, plus 6 transfers x 30 s = 180 s: 7 min
    assert "6 transfers (6 pending); estimated 7 min" in out
    assert "estimated time for 6 pending runs: 7 min" in out
    assert "100 images seen/s (1 complete runs under" in out
    assert out.count("[new]  ~1 min") == 6  # 40 s each, rounded


def _started(runs: Path, name: str, seconds_before_end: float) -> None:
    """Give a run the sweep.log a launcher writes: its start, ``seconds_before_end`` before its
    metrics.json."""
    metrics = runs / name / "metrics.json"
    end = int(metrics.stat().st_mtime)  # whole seconds, as the log's stamp
    os.utime(metrics, (end, end))
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(end - seconds_before_end))
    (runs / name / "sweep.log").write_text(f"\n=== {stamp} $ python -m experiments ...\nlog\n")


def test_dry_run_times_runs_from_their_logged_start_and_all_estimates_every_run(tmp_path, capsys):
    runs = tmp_path / "runs"
    configs = suite(tmp_path, runs, tmp_path / "out")
    planned = expand(load_spec(configs / "sweeps" / "scale_t.yaml"), [], runs_dir=str(runs))
    # a run outside the sweep: 8,000 images seen, wall_s 80 but 100 s from its logged start
    # (process start and preparation); its transfer: wall_s 30, 40 s from its start
    pm = pretrain_metrics("timed", vocab="in1k", images=1000.0, seed=9)
    pm.update(images_seen=8000, wall_s=80.0)
    pm["axes"]["model"] = "rx-tiny"
    write_run(runs, pm)
    write_run(runs, {**transfer_metrics("timed__lin", pm, 0.5, 9), "wall_s": 30.0})
    _started(runs, "timed", 100)
    _started(runs, "timed__lin", 40)
    # one of the sweep's own runs is complete: 4,000 images seen in 50 s (the same 80/s)
    done = {**pm, "name": planned[0].name, "images_seen": 4000, "wall_s": 1.0}
    write_run(runs, done)
    _started(runs, planned[0].name, 50)
    assert reproduce.run(parse("t", "--dry-run", "--configs-dir", str(configs))) == 0
    out = capsys.readouterr().out
    # 5 x 4000 images at 80/s = 250 s, plus 6 transfers x 40 s = 240 s: 8 min
    assert "estimated time for 5 pending runs: 8 min" in out
    assert "80 images seen/s (2 complete runs under" in out
    assert "transfers at 40 s each (1 complete)" in out
    # --all: the complete run counts as well: 6 x 50 s + 6 x 40 s = 540 s
    assert reproduce.run(parse("t", "--dry-run", "--all", "--configs-dir", str(configs))) == 0
    out = capsys.readouterr().out
    assert "estimated time for all 6 runs: 9 min" in out
    assert f"{planned[0].name}  images_seen 4,000  [complete]  ~1 min" in out
    # a second sweep of the suite that plans 3 of the same runs: they are estimated once
    shared = (configs / "sweeps" / "scale_t.yaml").read_text().replace("[0.5, 1.0]", "[1.0]")
    (configs / "sweeps" / "one_t.yaml").write_text(shared)
    assert reproduce.run(parse("t", "--dry-run", "--all", "--configs-dir", str(configs))) == 0
    out = capsys.readouterr().out
    # (sweeps in name order: one_t first, so scale_t has 3 runs left to estimate)
    assert "sweep one_t: 3 pretraining runs (3 new), 3 transfers (3 pending)" in out
    assert "sweep scale_t: 6 pretraining runs (1 complete, 5 new), 6 transfers (3 pending)" in out
    assert "estimated time for all 6 runs: 9 min" in out
    (configs / "sweeps" / "one_t.yaml").unlink()
    # two jobs at once: the summed run times (measured two at a time) over 2
    argv = ("t", "--dry-run", "--all", "--jobs", "2", "--configs-dir", str(configs))
    assert reproduce.run(parse(*argv)) == 0
    assert "estimated time for all 6 runs with 2 jobs at once: 4 min" in capsys.readouterr().out


def test_unknown_suite_or_sweep_is_one_line(tmp_path, capsys):
    configs = suite(tmp_path, tmp_path / "runs", tmp_path / "out")
    assert main(["reproduce", "nope", "--configs-dir", str(configs)]) == 2
    assert "unknown suite 'nope'" in capsys.readouterr().err
    assert (
        main(["reproduce", "t", "--dry-run", "--sweeps", "x", "--configs-dir", str(configs)]) == 2
    )
    assert "--sweeps: x not in suite t; its sweeps: scale_t" in capsys.readouterr().err


def test_results_folder_rebuilds_from_its_records_without_run_dirs(tmp_path, capsys):
    runs, out = tmp_path / "runs", tmp_path / "out"
    configs = suite(tmp_path, runs, out)
    for vocab in VOCABS:
        for images in SCALES:
            for seed in (0, 1, 2):
                name = f"{vocab}-{int(images)}-{seed}"
                pm = pretrain_metrics(name, vocab=vocab, images=images, seed=seed)
                write_run(runs, pm)
                write_run(
                    runs, transfer_metrics(f"{name}__lin", pm, acc_of(vocab, images, seed), seed)
                )
    names = [f"{v}-{int(i)}-{s}" for v in VOCABS for i in SCALES for s in (0, 1, 2)]
    (runs / "_sweeps").mkdir()
    (runs / "_sweeps" / "scale_t.json").write_text(
        json.dumps(
            {"sweep": "scale_t", "runs": [{"name": n, "transfers": [f"{n}__lin"]} for n in names]}
        )
    )
    assert reproduce.run(parse("t", "--tables-only", "--configs-dir", str(configs))) == 0
    built = {p.name: p.read_text() for p in out.glob("*.md")}
    built.update({p.name: p.read_text() for p in out.glob("*.csv")})
    assert {"scale.md", "findings.md", "scaling_scale.md", "results.csv"} <= set(built)
    assert (out / "acc_vs_images.png").is_file() and (out / "records.jsonl").is_file()
    # the scale claim: 3 seeds, each with a +5 points/decade slope over both vocabularies
    line = next(x for x in built["findings.md"].splitlines() if x.startswith("| transfer acc"))
    assert "| 3 | +5.00 | [" in line and "| agrees |" in line
    shutil.rmtree(runs)
    for p in out.iterdir():
        if p.name != "records.jsonl":
            p.unlink()
    assert main(["reproduce", "t", "--from-records", "--configs-dir", str(configs)]) == 0
    assert "rebuilt" in capsys.readouterr().out
    for name, text in built.items():
        assert (out / name).read_text() == text, name


def test_from_records_without_records_is_one_line(tmp_path, capsys):
    configs = suite(tmp_path, tmp_path / "runs", tmp_path / "out")
    assert main(["reproduce", "t", "--from-records", "--configs-dir", str(configs)]) == 2
    assert "no per-run records here" in capsys.readouterr().err


@pytest.mark.slow
def test_reduced_suite_end_to_end_through_the_one_command(tmp_path, capsys):
    """2 scales x 3 seeds of real pretraining and linear probes on the synthetic world, tiny
    budget, through `reproduce`; then rerun: everything is complete and nothing reruns."""
    runs, out, cache = tmp_path / "runs", tmp_path / "out", tmp_path / "cache"
    extra = "\n".join(
        f"  - {o}"
        for o in (
            "data.source.num_images=600",
            "data.dedup.targets=[synthetic_in]",  # the one target probed (default: all three)
            f"data.cache_dir={cache}",
            "schedule.warmup_images=64",
        )
    )
    configs = suite(tmp_path, runs, out, extra=extra)
    sweep = configs / "sweeps" / "scale_t.yaml"
    text = sweep.read_text().replace("schedule.images_seen=4000", "schedule.images_seen=640")
    text = text.replace(
        "    label: lin\n",
        "    label: lin\n    overrides: [transfer.max_per_class=10, 'transfer.l2_grid=[0.01]', "
        f"data.cache_dir={cache}, logging.wandb=false]\n",
    )
    sweep.write_text(text)
    argv = ["reproduce", "t", "--configs-dir", str(configs), "--jobs", "2"]
    assert main(argv) == 0, capsys.readouterr().out
    assert "done 12/12" in capsys.readouterr().out
    findings = pd.read_csv(out / "findings.csv").set_index("claim")
    scale = findings.loc["transfer accuracy grows log-linearly with pretraining images"]
    # the finding and the scale table are the runs' own numbers, recomputed here from the
    # probes' metrics.json: each scale's images are the mean of its seeds' counts (each seed
    # deduplicates its own world); per seed the slope of top-1 points per decade of images,
    # then scipy's 95% t-interval over the 3 seeds
    probes = [json.loads(p.read_text()) for p in runs.glob("*__*/metrics.json")]
    assert len(probes) == 6 and all(m["status"] == "complete" for m in probes)
    rows = pd.DataFrame(
        {"seed": m["seed"], "scale": m["pretrain_axes"]["scale"], "top1": m["top1"]}
        | {"images_run": m["pretrain_axes"]["images"]}
        for m in probes
    )
    rows["images"] = rows.groupby("scale")["images_run"].transform("mean").round()
    assert rows["images_run"].nunique() > 2  # the seeds' counts differ: the means matter
    slopes = []
    for _, g in rows.groupby("seed"):
        assert len(g) == 2
        small, big = g.sort_values("images").itertuples()
        slopes.append(100 * (big.top1 - small.top1) / np.log10(big.images / small.images))
    lo, hi = stats.t.interval(0.95, 2, loc=np.mean(slopes), scale=stats.sem(slopes))
    assert scale["n"] == 3
    assert scale["mean_diff"] == pytest.approx(np.mean(slopes), abs=1e-6)
    assert (scale["ci_lo"], scale["ci_hi"]) == pytest.approx((lo, hi), abs=1e-6)
    expected = "inconclusive" if lo <= 0 <= hi else ("agrees" if lo > 0 else "contradicts")
    assert scale["verdict"] == expected
    by_images = rows.groupby("images")["top1"]
    table = pd.read_csv(out / "scale.csv").set_index("images")
    assert sorted(table.index) == sorted(by_images.groups) and len(table) == 2
    for images, top1 in by_images:
        assert table.loc[images, "n"] == 3
        assert table.loc[images, "mean"] == pytest.approx(top1.mean())
    # the sweep ran each job (a pretraining run, then its probe) in one process; the probe gives
    # the same numbers in a process of its own, as every run did before jobs shared a process
    task = launchers.jobs_from_plan(expand(load_spec(sweep), [], runs_dir=str(runs)))[0].transfers[
        0
    ]
    again = tmp_path / "again"
    alone = dataclasses.replace(
        task,
        runs_dir=str(again),
        overrides=tuple(
            f"runs_dir={again}" if o.startswith("runs_dir=") else o for o in task.overrides
        ),
    )
    launchers.subprocess_runner(alone)
    shared, own = (json.loads((t.run_dir / "metrics.json").read_text()) for t in (task, alone))
    assert "(in the job's process)" in task.log_path.read_text()
    assert own["status"] == "complete" and own["pretrained"] == shared["pretrained"]
    for key in ("top1", "top5", "probe", "num_train", "num_val"):
        assert own[key] == shared[key], key
    assert main(argv) == 0
    assert "12 already complete" in capsys.readouterr().out
