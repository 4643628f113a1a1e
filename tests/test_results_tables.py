"""Results index, paper tables (Markdown / LaTeX / CSV), figures and findings, rebuilt from
run directories whose metrics.json follow docs/CONTRACTS.md."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
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


def transfer_metrics(name, pretrain: dict | None, top1: float, seed: int, **kw) -> dict:
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
        "resolution": 64,
        "bn_recalibrate": pretrain is None,
        "wall_s": 3.0,
        **kw,
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
    assert row["resolution"] == 64 and not row["bn_recalibrate"] and row["features"] == "last"
    assert row["target_split"] == "" and row["folds"] == 0  # metrics.json without the key
    assert rnd["bn_recalibrate"].item()
    assert "crashed" not in set(df["pretrain_run"].dropna())
    csv, parquet, records = results.write_index(df, runs.parent / "out")
    back = pd.read_parquet(parquet)
    assert len(back) == len(df) and set(results.COLUMNS) == set(back.columns)
    assert pd.read_csv(csv)["top1"].sum() == pytest.approx(df["top1"].sum())
    # the per-run records give back the same index, values and types, without the run dirs
    pd.testing.assert_frame_equal(results.read_records(records), df)


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
    assert (out / "acc_vs_images.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    fits = json.loads((out / "scaling_vocab.json").read_text())
    assert {f["hue"] for f in fits} == set(VOCABS)
    # 2 seeds: a cluster bootstrap over seeds, a real interval around a +5 points/decade slope
    for f in fits:
        lo, hi = f["ci95"]["beta"]
        assert f["resampling"] == "seeds" and f["resampling_units"] == 2 and lo < 5.0 < hi
        assert f["extrapolated"] and f["target_images"] == 3.5e9
    assert "extrapolation" in (out / "scaling_vocab.md").read_text()
    findings_md = (out / "findings.md").read_text()
    # the fixture's sampling and noise runs have one seed: n = 1, no interval, inconclusive
    line = next(x for x in findings_md.splitlines() if x.startswith("| square-root sampling"))
    assert "| sampling sqrt − natural | 1 | +5.50 | — | inconclusive |" in line
    line = next(x for x in findings_md.splitlines() if x.startswith("| multi-label softmax"))
    assert "no matched runs | 0 | — | — | inconclusive |" in line


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


def test_runs_differing_only_in_a_transfer_setting_land_in_two_cells(tmp_path):
    root = tmp_path / "runs"
    pm = pretrain_metrics("pt", vocab="in1k", images=1000.0, seed=0)
    write_run(root, pm)
    write_run(root, transfer_metrics("pt__last", pm, 0.40, 0, features="last"))
    write_run(root, transfer_metrics("pt__all", pm, 0.50, 0, features="all"))
    # a second target split of the same target (metrics.json's target_split, when present)
    write_run(root, transfer_metrics("pt__cats", pm, 0.30, 0, target_split="held-out categories"))
    df = results.build_index(root)
    assert set(df["target_split"]) == {"", "held-out categories"}
    t = tables.build_table(df, tables.TableSpec(name="t", rows=["vocab"]))
    assert t.split_by == ["target_split", "features"]
    labels = [t.column_label(c) for c in t.columns]
    assert labels == [
        "synthetic_in · linear · target_split= · features=all",
        "synthetic_in · linear · target_split= · features=last",
        "synthetic_in · linear · target_split=held-out categories · features=last",
    ]
    assert t.cells == [["50.0 (1)", "40.0 (1)", "30.0 (1)"]]
    assert "| in1k | 50.0 (1) | 40.0 (1) | 30.0 (1) |" in tables.to_markdown(t)
    # a setting that is constant inside every cell adds nothing
    same = df[df["target_split"] == ""]
    t = tables.build_table(same, tables.TableSpec(name="t", rows=["vocab", "features"]))
    assert t.split_by == [] and t.cells == [["50.0 (1)"], ["40.0 (1)"]]
    # findings evaluate each setting on its own
    table = findings.findings_table(df)
    assert set(table["evaluated_on"]) == {"—"}  # one seed, nothing paired, but not mixed either


def test_latex_escapes_every_special_character(tmp_path):
    root = tmp_path / "runs"
    label = "a$b{c}d~e^f&g%h_i#j"
    pm = pretrain_metrics("pt", vocab="in1k", images=1000.0, seed=0)
    pm["axes"]["vocab"] = label
    write_run(root, pm)
    write_run(root, transfer_metrics("pt__a", pm, 0.40, 0))
    write_run(root, transfer_metrics("pt__b", pm, 0.42, 1))
    df = results.build_index(root)
    t = tables.build_table(df, tables.TableSpec(name="t", rows=["vocab"]))
    tex = tables.to_latex(t, title="top-1 (%) of 50% noise_runs #1 ~ ^ {x} $5")
    escaped = r"a\$b\{c\}d\textasciitilde e\textasciicircum f\&g\%h\_i\#j"
    assert f"{escaped} & 41.0 $\\pm$ 1.4 (2) \\\\" in tex
    assert (
        r"\caption{top-1 (\%) of 50\% noise\_runs \#1 \textasciitilde \space "
        r"\textasciicircum \space \{x\} \$5}" in tex
    )
    assert r"vocab & synthetic\_in / linear \\" in tex
    assert r"\begin{tabular}{lr}" in tex and r"\toprule" in tex and r"\bottomrule" in tex
    # nothing special is left unescaped in the body (outside the one math $\pm$)
    body = tex.split(r"\midrule")[1].replace(r"$\pm$", "")
    for ch in "$&%#_{}~^":
        bare = body.replace("\\" + ch, "").replace(r"\textasciitilde", "")
        bare = bare.replace(r"\textasciicircum", "").replace(r"\bottomrule", "")
        if ch == "&":
            bare = bare.replace(" & ", " ")
        assert ch not in bare.replace(r"\end{tabular}", "").replace(r"\end{table}", ""), ch


def test_figure_plots_the_means_and_stds_of_its_runs(runs):
    df = results.build_index(runs)
    spec = tables.FigureSpec(name="f", x="images", hue="vocab", logx=True, sweep="scale_vocab_mini")
    fig = tables.draw_figure(df, spec)
    (ax,) = fig.axes
    assert ax.get_xscale() == "log"
    bars = {c.get_label(): c for c in ax.containers}
    assert set(bars) == {f"vocab={v}" for v in VOCABS}
    for vocab in VOCABS:
        line, _, (segments,) = bars[f"vocab={vocab}"]
        assert list(line.get_xdata()) == SCALES
        for x, y, seg in zip(line.get_xdata(), line.get_ydata(), segments.get_segments()):
            seeds = [0] if (vocab, x) == ("wordnet", 100000.0) else [0, 1]
            values = [100 * acc_of(vocab, x, s) for s in seeds]
            assert y == pytest.approx(np.mean(values))
            half = np.std(values, ddof=1) if len(values) > 1 else 0.0
            assert seg[:, 1] == pytest.approx([y - half, y + half])


def test_tables_import_leaves_matplotlib_global_state_alone():
    code = (
        "import sys, experiments.tables, experiments.scaling; "
        "print('matplotlib.pyplot' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False"


def test_empty_runs_dir_gives_dashes(tmp_path):
    df = results.build_index(tmp_path / "nothing")
    assert df.empty and list(df.columns) == results.COLUMNS
    t = tables.build_table(df, tables.TableSpec(name="t", sweep="scale_mini"))
    assert t.cells == []
    f = findings.findings_table(df)
    assert set(f["verdict"]) == {"inconclusive"} and set(f["n"]) == {0}
    assert len(f) == len(findings.CLAIMS)


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


def test_tables_rebuilt_from_records_have_the_same_cells(runs, tmp_path):
    cfg = load_config(
        CONFIGS_DIR / "tables" / "mini.yaml",
        [f"runs_dir={runs}", f"output_dir={tmp_path / 'from_runs'}"],
        schema=tables.TablesConfig,
    )
    cfg.tables.append(tables.TableSpec(name="all", rows=["vocab", "images"]))
    tables.build_all(cfg)
    records = results.read_records(tmp_path / "from_runs" / results.RECORDS_FILE)
    cfg.runs_dir, cfg.output_dir = str(tmp_path / "no-runs-here"), str(tmp_path / "from_records")
    tables.build_all(cfg, df=records)
    names = [f"{t.name}.{ext}" for t in cfg.tables for ext in ("md", "csv", "tex")]
    names += ["findings.md", "findings.csv", "scaling_vocab.md", "scaling_vocab.json"]
    for name in names:
        a = (tmp_path / "from_runs" / name).read_text()
        assert a == (tmp_path / "from_records" / name).read_text(), name
    values = [100 * acc_of("in1k", 1000.0, s) for s in (0, 1)]
    cell = f"{np.mean(values):.1f} ± {np.std(values, ddof=1):.1f} (2)"
    assert f"| in1k | 1k | {cell} |" in (tmp_path / "from_records" / "all.md").read_text()


def test_seeds_with_their_own_image_counts_share_one_row(tmp_path):
    """Each seed draws and deduplicates its own data, so the seeds of one setting measure a few
    images (and hashtags) apart: they are still one table row, labelled with their mean."""
    root = tmp_path / "runs"
    counts = {0: (205, 290), 1: (219, 296), 2: (223, 293)}  # seed -> (images, vocab_size)
    for seed, (images, vocab_size) in counts.items():
        pm = pretrain_metrics(f"p{seed}", vocab="in1k", images=images, seed=seed)
        pm["axes"].update(scale=0.5, vocab_size=vocab_size)
        write_run(root, pm)
        write_run(root, transfer_metrics(f"p{seed}__linear", pm, 0.3 + 0.01 * seed, seed))
    df = results.build_index(root)
    assert list(df["images"]) == [216.0] * 3  # round(mean(205, 219, 223))
    assert list(df["vocab_size"]) == [293.0] * 3
    assert list(df["images_run"]) == [205, 219, 223]
    assert list(df["vocab_size_run"]) == [290, 296, 293]
    t = tables.build_table(df, tables.TableSpec(name="t", rows=["vocab", "images"]))
    assert t.rows == [("in1k", 216)]
    values = [30.0, 31.0, 32.0]
    assert t.cells[0] == [f"{np.mean(values):.1f} ± {np.std(values, ddof=1):.1f} (3)"]


def test_a_swept_key_that_is_no_axis_keeps_its_own_setting(tmp_path):
    """data.vocab.top_k is not an axis (a top-100 WordNet vocabulary has vocab=wordnet like the full
    one) but it is in the sweep's run names: the two settings keep their own image means, so
    the full vocabulary's runs still pair with the noise runs of the same data (this mixing
    emptied every noise, sampling and loss pair of the mini sweeps)."""
    root = tmp_path / "runs"
    runs = {  # name -> (images, vocab_size)
        "m_vocab-wordnet_seed-0": (6680, 506),
        "m_vocab-wordnet_seed-1": (6700, 505),
        "m_vocab-100_seed-0": (6000, 100),
        "m_vocab-100_seed-1": (6010, 100),
    }
    for name, (images, vocab_size) in runs.items():
        seed = int(name[-1])
        pm = pretrain_metrics(name, vocab="wordnet", images=images, seed=seed)
        pm["axes"].update(scale=1.0, vocab_size=vocab_size)
        write_run(root, pm)
    df = results.build_index(root).set_index("pretrain_run")
    assert df.loc["m_vocab-wordnet_seed-0", "images"] == 6690.0
    assert df.loc["m_vocab-wordnet_seed-1", "images"] == 6690.0
    assert df.loc["m_vocab-100_seed-0", "images"] == 6005.0
    assert df.loc["m_vocab-100_seed-1", "vocab_size"] == 100.0
    assert df.loc["m_vocab-wordnet_seed-1", "vocab_size"] == 506.0  # round(505.5), banker's
