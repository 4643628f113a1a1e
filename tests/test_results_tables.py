"""Results index, paper tables (Markdown / LaTeX / CSV), figures and findings, rebuilt from
run directories whose metrics.json follow docs/CONTRACTS.md."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from experiments import findings, results, tables
from experiments.config import CONFIGS_DIR, load_config
from experiments.rundir import RunDir, atomic_write_json

SCALES = [1000.0, 10000.0, 100000.0]
VOCABS = {"in1k": 150, "wordnet": 900}


def acc_of(
    vocab: str, images: float, seed: int, sampling: str = "sqrt", noise: float = 0.0
) -> float:
    """A known, distinct accuracy for every run (so the table's numbers can be checked)."""
    base = 0.30 + 0.05 * np.log10(images) + (0.02 if vocab == "wordnet" else 0.0)
    base -= {"sqrt": 0.0, "uniform": 0.01, "natural": 0.055}[sampling] + noise * 0.08
    return round(base + 0.004 * seed, 6)


def pretrain_metrics(name, *, vocab, images, seed, sampling="sqrt", noise=0.0) -> dict:
    return {
        "status": "complete",
        "kind": "pretrain",
        "name": name,
        "axes": {
            "source": "synthetic",
            "images": int(images),
            "scale": images,
            "vocab": vocab,
            "vocab_size": VOCABS[vocab],
            "sampling": sampling,
            "sampling_combine": "mean",
            "label_noise": noise,
            "model": "rx-tiny",
            "width_per_group": 4,
            "loss": "softmax",
            "seed": seed,
        },
        "images_seen": 5000,
        "final": {"loss": 3.0, "precision_at_1": 0.4, "precision_at_5": 0.7},
        "best": {},
        "checkpoint": f"{name}/checkpoints/last.ckpt",
        "wall_s": 12.0,
    }


def transfer_metrics(name, pretrain: dict | None, top1: float, seed: int) -> dict:
    return {
        "status": "complete",
        "kind": "transfer",
        "name": name,
        "protocol": "linear",
        "target": "synthetic_in",
        "features": "last",
        "top1": top1,
        "top5": min(1.0, top1 + 0.2),
        "top1_std": None,
        "top5_std": None,
        "folds": 0,
        "num_classes": 10,
        "seed": seed,
        "pretrain_run": pretrain["name"] if pretrain else "",
        "pretrain_axes": pretrain["axes"] if pretrain else {},
        "init": "hashtag" if pretrain else "random",
        "wall_s": 3.0,
    }


def write_run(runs: Path, metrics: dict) -> None:
    RunDir.create(runs, metrics["name"]).write_metrics(metrics)


@pytest.fixture
def runs(tmp_path) -> Path:
    """2 vocabularies x 3 scales x 2 seeds with linear transfers; the (wordnet, 100k, seed 1)
    transfer is missing (its pretraining exists); one random-init transfer; one incomplete run;
    and a sampling / noise mini-sweep at 10k."""
    root = tmp_path / "runs"
    for vocab in VOCABS:
        for images in SCALES:
            for seed in (0, 1):
                name = f"rx-tiny_data-{int(images)}_vocab-{vocab}_seed-{seed}"
                pm = pretrain_metrics(name, vocab=vocab, images=images, seed=seed)
                write_run(root, pm)
                if (vocab, images, seed) == ("wordnet", 100000.0, 1):
                    continue
                top1 = acc_of(vocab, images, seed)
                write_run(root, transfer_metrics(f"{name}__linear", pm, top1, seed))
    for sampling in ("natural", "uniform"):
        name = f"rx-tiny_data-10000_vocab-in1k_samp-{sampling}_seed-0"
        pm = pretrain_metrics(name, vocab="in1k", images=10000.0, seed=0, sampling=sampling)
        write_run(root, pm)
        top1 = acc_of("in1k", 10000.0, 0, sampling)
        write_run(root, transfer_metrics(f"{name}__linear", pm, top1, 0))
    for noise in (0.1, 0.25):
        name = f"rx-tiny_data-10000_vocab-in1k_noise-{int(noise * 100)}_seed-0"
        pm = pretrain_metrics(name, vocab="in1k", images=10000.0, seed=0, noise=noise)
        write_run(root, pm)
        write_run(
            root,
            transfer_metrics(f"{name}__linear", pm, acc_of("in1k", 10000.0, 0, noise=noise), 0),
        )
    write_run(root, transfer_metrics("random-init_linear_seed-0", None, 0.12, 0))
    RunDir.create(root, "crashed").write_metrics({"status": "running", "kind": "pretrain"})
    atomic_write_json(
        root / "_sweeps" / "scale_vocab_mini.json",
        {
            "sweep": "scale_vocab_mini",
            "runs": [
                {
                    "name": f"rx-tiny_data-{int(i)}_vocab-{v}_seed-{s}",
                    "transfers": [f"rx-tiny_data-{int(i)}_vocab-{v}_seed-{s}__linear"],
                }
                for v in VOCABS
                for i in SCALES
                for s in (0, 1)
            ],
        },
    )
    return root


def test_index_joins_transfers_to_their_pretraining(runs):
    df = results.build_index(runs)
    # 11 hashtag transfers in the scale x vocab grid, 4 in the sampling/noise runs, 1 random
    # init, and the pretraining run whose transfer is missing as its own row
    assert len(df) == 11 + 4 + 1 + 1
    lone = df[df["transfer_run"].isna()]
    assert list(lone["pretrain_run"]) == ["rx-tiny_data-100000_vocab-wordnet_seed-1"]
    rnd = df[df["init"] == "random"]
    assert len(rnd) == 1 and rnd["pretrain_run"].isna().all() and rnd["top1"].iloc[0] == 0.12
    row = df[df["transfer_run"] == "rx-tiny_data-1000_vocab-in1k_seed-1__linear"].iloc[0]
    assert row["vocab"] == "in1k" and row["images"] == 1000 and row["seed"] == 1
    assert row["top1"] == acc_of("in1k", 1000.0, 1)
    assert row["sweeps"] == "scale_vocab_mini"
    assert "crashed" not in set(df["pretrain_run"].dropna())
    csv, parquet = results.write_index(df, runs.parent / "out")
    back = pd.read_parquet(parquet)
    assert len(back) == len(df) and set(results.COLUMNS) == set(back.columns)
    assert pd.read_csv(csv)["top1"].sum() == pytest.approx(df["top1"].sum())


def test_table_numbers_match_metrics_and_missing_cell_is_dash(runs, tmp_path):
    cfg_path = tmp_path / "tables.yaml"
    cfg_path.write_text(
        f"""
runs_dir: {runs}
output_dir: {tmp_path / "out"}
tables:
  - name: scale_vocab
    sweep: scale_vocab_mini
    rows: [vocab, images]
    columns: [target, protocol, seed]
figures:
  - name: acc_vs_images
    x: images
    hue: vocab
    logx: true
    where: {{sampling: sqrt, label_noise: 0.0}}
scaling:
  - name: scaling_vocab
    sweep: scale_vocab_mini
    hue: vocab
    bootstrap: 50
"""
    )
    parser = argparse.ArgumentParser()
    tables.add_arguments(parser)
    assert tables.run(parser.parse_args([str(cfg_path)])) == 0
    out = tmp_path / "out"
    stats = pd.read_csv(out / "scale_vocab.csv")
    # every cell is one run here (seed is a column): its mean is that run's top1, n = 1
    for vocab in VOCABS:
        for images in SCALES:
            for seed in (0, 1):
                hit = stats[
                    (stats["vocab"] == vocab)
                    & (stats["images"] == images)
                    & (stats["seed"] == seed)
                ]
                if (vocab, images, seed) == ("wordnet", 100000.0, 1):
                    assert hit.empty
                    continue
                assert hit["mean"].item() == pytest.approx(acc_of(vocab, images, seed))
                assert hit["n"].item() == 1
    md = (out / "scale_vocab.md").read_text().splitlines()
    wordnet_100k = next(line for line in md if line.startswith("| wordnet | 100k |"))
    cells = [c.strip() for c in wordnet_100k.strip("|").split("|")]
    assert cells[2] == f"{100 * acc_of('wordnet', 1e5, 0):.1f} (1)" and cells[3] == "—"
    tex = (out / "scale_vocab.tex").read_text()
    assert "---" in tex and r"\begin{tabular}{llrr}" in tex
    assert (out / "acc_vs_images.png").stat().st_size > 5000
    assert (out / "scaling_vocab.png").is_file() and (out / "scaling_vocab.json").is_file()
    findings_md = (out / "findings.md").read_text()
    assert "a wider model helps at scale | 32x16d" in findings_md and "not run" in findings_md


def test_mean_std_over_seeds(runs):
    df = results.build_index(runs)
    spec = tables.TableSpec(
        name="t", rows=["vocab", "images"], columns=["target", "protocol"], sweep="scale_vocab_mini"
    )
    t = tables.build_table(df, spec)
    row = t.rows.index(("in1k", 1000))
    values = [100 * acc_of("in1k", 1000.0, s) for s in (0, 1)]
    assert t.cells[row][0] == f"{np.mean(values):.1f} ± {np.std(values, ddof=1):.1f} (2)"
    # the wordnet 100k cell has one seed: no spread, n = 1
    assert (
        t.cells[t.rows.index(("wordnet", 100000))][0]
        == f"{100 * acc_of('wordnet', 1e5, 0):.1f} (1)"
    )
    # random init rows carry their init in the first key
    t_all = tables.build_table(df, tables.TableSpec(name="all", rows=["vocab", "images"]))
    assert ("random init", "") in t_all.rows


def test_findings_measure_the_planted_effects(runs):
    df = results.build_index(runs)
    table = findings.findings_table(df).set_index("claim")
    # runs are averaged over seeds within a setup first: sqrt at (in1k, 10k) has seeds 0 and 1
    # (mean +0.2 points over seed 0), the others seed 0 only; planted sqrt - natural = 5.5
    assert table.loc["square-root sampling beats natural", "measured"].startswith("+5.7 points")
    assert table.loc["uniform sampling beats natural", "measured"].startswith("+4.5 points")
    assert table.loc["uniform sampling beats natural", "sweeps"] == "(runs outside a sweep)"
    assert table.loc["10% label noise costs little", "measured"].startswith("-1.0 points")
    assert table.loc["25% label noise costs about 2 points", "measured"].startswith("-2.2 points")
    assert table.loc["50% label noise", "measured"] == "not run"
    assert table.loc["multi-label softmax beats per-hashtag sigmoid", "measured"] == "not run"
    # +5 points per decade planted in every setup
    slope = table.loc["transfer accuracy grows log-linearly with pretraining images", "measured"]
    assert slope.startswith("+5.0 points per 10x images (R² 1.00)")
    vocab = table.loc["a bigger hashtag vocabulary helps at scale"]
    # at the largest scale only seed 0 of wordnet has a transfer: 2.0 points minus half the seed step
    assert vocab["measured"].startswith("vocab wordnet vs in1k: +1.8 points")
    assert vocab["sweeps"] == "scale_vocab_mini"


def test_empty_runs_dir_gives_dashes(tmp_path):
    df = results.build_index(tmp_path / "nothing")
    assert df.empty and list(df.columns) == results.COLUMNS
    t = tables.build_table(df, tables.TableSpec(name="t", sweep="scale_mini"))
    assert t.cells == []
    f = findings.findings_table(df)
    assert set(f["measured"]) == {"not run"}


@pytest.mark.parametrize(
    "path", sorted((CONFIGS_DIR / "tables").glob("*.yaml")), ids=lambda p: p.name
)
def test_shipped_tables_configs_run(path, runs, tmp_path):
    cfg = load_config(
        path, [f"runs_dir={runs}", f"output_dir={tmp_path / 'out'}"], schema=tables.TablesConfig
    )
    written = tables.build_all(cfg)
    assert len(written["tables"]) == 3 * len(cfg.tables)
    # only the fixture's scale_vocab_mini runs belong to a shipped sweep; other tables stay empty
    for spec in cfg.tables:
        stats = pd.read_csv(tmp_path / "out" / f"{spec.name}.csv")
        assert stats["n"].sum() == (11 if spec.sweep == "scale_vocab_mini" else 0)
