"""A real 2-run sweep (issue 8): each run a fresh `python -m experiments` subprocess on the
synthetic world, its linear probe after it; the tables rebuilt from those run directories carry
exactly the numbers of their metrics.json files."""

from __future__ import annotations

import argparse
import json

import pytest

from experiments import sweep
from experiments.tables import TablesConfig, TableSpec, build_all


@pytest.mark.slow
def test_real_two_run_sweep_then_tables(tmp_path, capsys):
    runs, cache = tmp_path / "runs", tmp_path / "cache"
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        f"""
base: configs/pretrain/tiny_cpu.yaml
runs_dir: {runs}
overrides:
  - data.num_images=600
  - data.cache_dir={cache}
  - schedule.images_seen=640
  - schedule.warmup_images=64
  - logging.wandb=false
grid:
  data.sampling: [natural, sqrt]
seeds: [0]
transfers:
  - config: configs/transfer/linear_synthetic_in.yaml
    overrides: [transfer.max_per_class=10, data.cache_dir={cache}, logging.wandb=false]
"""
    )
    parser = argparse.ArgumentParser()
    sweep.add_arguments(parser)
    assert sweep.run(parser.parse_args([str(spec)])) == 0, capsys.readouterr().out
    assert "done 4/4" in capsys.readouterr().out

    transfers = [json.loads(p.read_text()) for p in runs.glob("*__*/metrics.json")]
    assert len(transfers) == 2 and all(m["status"] == "complete" for m in transfers)
    out = tmp_path / "tables"
    cfg = TablesConfig(
        runs_dir=str(runs),
        output_dir=str(out),
        tables=[TableSpec(name="sampling", rows=["sampling"], columns=["target"], digits=4)],
        findings=False,
    )
    build_all(cfg)
    table = (out / "sampling.md").read_text()
    for m in transfers:
        sampling = m["pretrain_axes"]["sampling"]
        assert f"| {sampling} | {100 * m['top1']:.4f} (1) |" in table

    # rerunning the sweep redoes nothing: every run is complete
    assert sweep.run(parser.parse_args([str(spec)])) == 0
    assert "4 already complete" in capsys.readouterr().out
