"""Findings: paired per-seed differences, their t interval over seeds and the verdict, on
hand-built per-run records whose answers are known exactly."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from scipy import stats

from datamodules.errors import UserInputError
from experiments import findings, results

T2 = stats.t.ppf(0.975, 2) / math.sqrt(3)  # half-width of a 95% t interval per unit sd, n = 3


def record(seed: int, top1: float, **kw) -> dict:
    """One row of the results index: a hashtag-pretrained linear probe, defaults everywhere."""
    row = {c: None for c in results.COLUMNS}
    row.update(
        source="synthetic",
        scale=1.0,
        images=4000,
        vocab="wordnet",
        vocab_size=900,
        sampling="sqrt",
        sampling_combine="mean",
        label_noise=0.0,
        model="rx-tiny",
        width_per_group=4,
        loss="softmax",
        seed=seed,
        images_seen=8000,
        init="hashtag",
        target="synthetic_in",
        target_split="",
        protocol="linear",
        features="last",
        bn_recalibrate=False,
        resolution=64,
        folds=1,
        transfer_seed=seed,
        top1=top1,
        sweeps="",
    )
    row.update(kw)
    row["pretrain_run"] = f"run-{len(kw)}-{sorted(kw.items())}-{seed}"
    row["transfer_run"] = row["pretrain_run"] + "__linear"
    return row


def pair(axis: str, treat, control, diffs: list[float], base: float = 0.5, **kw) -> list[dict]:
    """Two runs per seed differing only in `axis`: treat = control + diff (points). Each call
    is its own setup (its own `source`), as separate sweeps' runs would be."""
    kw.setdefault("source", f"world-{axis}-{treat}-{kw.get('features', 'last')}")
    rows = []
    for seed, d in enumerate(diffs):
        control_acc = base + 0.01 * seed  # seeds differ; the pairing removes it
        rows.append(record(seed, control_acc, **{axis: control}, **kw))
        rows.append(record(seed, control_acc + d / 100, **{axis: treat}, **kw))
    return rows


def index(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=results.COLUMNS)


def row_of(table: pd.DataFrame, key: str, **where) -> pd.Series:
    claim = next(c for c in findings.CLAIMS if c.key == key).claim
    hit = table[table["claim"] == claim]
    for k, v in where.items():
        hit = hit[hit[k].str.contains(v, regex=False)]
    assert len(hit) == 1, hit
    return hit.iloc[0]


@pytest.fixture
def records() -> pd.DataFrame:
    rows = []
    rows += pair("sampling", "sqrt", "natural", [5.0, 6.0, 7.0])
    rows += pair("sampling", "uniform", "natural", [-1.0, 2.0, 0.5])
    # the same comparison probed on all stages: its own evaluation, never mixed in
    rows += pair("sampling", "sqrt", "natural", [-9.0, -9.0, -9.0], features="all")
    # seed 3 has no sqrt partner: not paired
    rows.append(record(3, 0.7, sampling="natural", source="world-sampling-sqrt-last"))
    rows += pair("label_noise", 0.1, 0.0, [-0.2, -0.4, -0.3])
    rows += pair("label_noise", 0.25, 0.0, [-2.0, -2.5])  # two seeds only
    rows += pair("loss", "softmax", "sigmoid", [-3.0, -4.0, -5.0])
    # width: 2, 4, 8 at two scales; the claim pairs 8 vs 2 at the largest scale only
    for scale, diffs in ((0.25, [-10.0, -10.0, -10.0]), (1.0, [2.0, 3.0, 4.0])):
        for seed, d in enumerate(diffs):
            for width, extra in ((2, 0.0), (4, d / 200), (8, d / 100)):
                kw = dict(scale=scale, width_per_group=width, model=f"rx-tiny-{width}d",
                          source="world-width")  # fmt: skip
                rows.append(record(seed, 0.4 + extra, **kw))
    # vocabulary: largest vs smallest by size; a middle one that must not count
    for seed, d in enumerate([1.5, 2.0, 2.5]):
        kw = dict(source="world-vocab")
        rows.append(record(seed, 0.45, vocab="in1k", vocab_size=150, **kw))
        rows.append(record(seed, 0.45 + d / 200, vocab="wordnet", vocab_size=400, **kw))
        rows.append(record(seed, 0.45 + d / 100, vocab="wordnet", vocab_size=900, **kw))
    # scale: per seed slope 4, 5, 6 points per decade; a seed offset that pairing removes;
    # images_seen follows the dataset size (it is tied to the scale)
    for seed, slope in enumerate([4.0, 5.0, 6.0]):
        for images in (500, 1000, 2000, 4000):
            acc = 0.3 + 0.02 * seed + slope / 100 * math.log10(images)
            kw = dict(scale=images / 4000, images=images, images_seen=2 * images)
            kw.update(source="world-scale")
            rows.append(record(seed, acc, **kw))
    rnd = record(0, 0.1, init="random")  # a random-init probe: never part of a finding
    rows.append({**rnd, **{k: None for k in results.AXES if k != "seed"}})
    return index(rows)


def test_paired_differences_interval_and_verdicts(records):
    table = findings.findings_table(records)
    sqrt = row_of(table, "sampling_sqrt", evaluated_on="features=last")
    assert sqrt["n"] == 3 and sqrt["mean_diff"] == pytest.approx(6.0)
    assert (sqrt["ci_lo"], sqrt["ci_hi"]) == pytest.approx((6.0 - T2, 6.0 + T2))
    assert sqrt["verdict"] == "agrees" and sqrt["size_vs_paper"] == "as the paper's"
    # the all-stages probe is a separate row: same claim, its own numbers
    sqrt_all = row_of(table, "sampling_sqrt", evaluated_on="features=all")
    assert sqrt_all["mean_diff"] == pytest.approx(-9.0) and sqrt_all["ci_lo"] == sqrt_all["ci_hi"]
    assert sqrt_all["verdict"] == "contradicts" and sqrt_all["size_vs_paper"] == "opposite"

    uniform = row_of(table, "sampling_uniform", evaluated_on="features=last")
    sd = pd.Series([-1.0, 2.0, 0.5]).std()
    assert uniform["mean_diff"] == pytest.approx(0.5)
    assert uniform["ci_hi"] - uniform["ci_lo"] == pytest.approx(2 * T2 * sd)
    assert uniform["verdict"] == "inconclusive" and uniform["size_vs_paper"] == "smaller"

    noise10 = row_of(table, "noise_10")
    assert noise10["mean_diff"] == pytest.approx(-0.3)
    assert (noise10["ci_lo"], noise10["ci_hi"]) == pytest.approx((-0.3 - 0.1 * T2, -0.3 + 0.1 * T2))
    assert noise10["verdict"] == "agrees" and noise10["size_vs_paper"] == "as the paper's"

    # two seeds: an interval (t with 1 df) that excludes 0, yet n < 3 is inconclusive
    noise25 = row_of(table, "noise_25")
    half = stats.t.ppf(0.975, 1) * pd.Series([-2.0, -2.5]).std() / math.sqrt(2)
    assert noise25["n"] == 2 and noise25["ci_hi"] == pytest.approx(-2.25 + half)
    assert noise25["verdict"] == "inconclusive"

    loss = row_of(table, "loss")
    assert loss["mean_diff"] == pytest.approx(-4.0) and loss["ci_hi"] == pytest.approx(-4 + T2)
    assert loss["verdict"] == "contradicts" and loss["size_vs_paper"] == "—"

    width = row_of(table, "width")  # 8 vs 2 at scale 1.0: 2, 3, 4 (scale 0.25's -10 ignored)
    assert width["n"] == 3 and width["mean_diff"] == pytest.approx(3.0)
    assert width["verdict"] == "agrees"

    vocab = row_of(table, "vocab")  # 900 vs 150 hashtags: 1.5, 2, 2.5 (the 400 one is between)
    assert vocab["mean_diff"] == pytest.approx(2.0)
    assert vocab["ci_lo"] == pytest.approx(2.0 - 0.5 * T2) and vocab["verdict"] == "agrees"

    scale = row_of(table, "scale")  # per-seed slopes 4, 5, 6 points per decade
    assert scale["n"] == 3 and scale["mean_diff"] == pytest.approx(5.0)
    assert scale["ci_lo"] == pytest.approx(5.0 - T2) and scale["verdict"] == "agrees"

    none = row_of(table, "noise_50")
    assert none["n"] == 0 and none["verdict"] == "inconclusive"
    assert "no matched runs" in none["comparison"] and math.isnan(none["ci_lo"])


def test_per_seed_number_averages_matched_setups():
    rows = pair("sampling", "sqrt", "natural", [7.0, 8.0, 9.0], scale=0.5)
    rows += pair("sampling", "sqrt", "natural", [5.0, 6.0, 7.0], scale=1.0)
    claim = next(c for c in findings.CLAIMS if c.key == "sampling_sqrt")
    per_seed = findings.per_seed_differences(index(rows), claim)
    assert per_seed.to_dict() == pytest.approx({0: 6.0, 1: 7.0, 2: 8.0})


def test_runs_differing_in_a_setup_column_are_not_paired():
    # sqrt and natural at different budgets: not the same setup, so no pair
    rows = [record(s, 0.5, sampling="natural", images_seen=8000) for s in range(3)]
    rows += [record(s, 0.6, sampling="sqrt", images_seen=16000) for s in range(3)]
    claim = next(c for c in findings.CLAIMS if c.key == "sampling_sqrt")
    assert findings.measure(index(rows), claim).n == 0


def test_findings_sweeps_restrict_a_claim_and_markdown_has_a_row_per_claim(records):
    df = records.copy()
    sqrt = (df["sampling"].isin(["sqrt", "natural"])) & (df["features"] == "last")
    df.loc[sqrt, "sweeps"] = "sampling_mini"
    table = findings.findings_table(df, sweeps={"sampling_sqrt": "sampling_mini"})
    rows = table[table["claim"] == "square-root sampling beats natural"]
    # only the sweep's runs: the features=all pairs are gone
    assert list(rows["n"]) == [3] and rows["sweeps"].item() == "sampling_mini"
    md = findings.findings_markdown(table)
    line = next(x for x in md.splitlines() if x.startswith("| square-root sampling"))
    assert f"| 3 | +6.00 | [{6 - T2:+.2f}, {6 + T2:+.2f}] | agrees | as the paper's |" in line
    assert all(f"| {c.claim} |" in md for c in findings.CLAIMS)
    with pytest.raises(UserInputError, match="unknown claims"):
        findings.findings_table(df, sweeps={"sampling": "sampling_mini"})


def test_baseline_claim_pairs_the_largest_scale_with_the_recalibrated_random_net():
    """hashtag-pretrained (largest scale) minus random init of the same seed and probe; the
    random rows with re-estimated BN are the baseline when they exist, other scales and other
    probes are not paired."""
    rows, gains = [], [12.0, 10.0, 14.0]
    for seed, gain in enumerate(gains):
        random_top1 = 0.30 + 0.01 * seed
        rows.append(record(seed, random_top1 + gain / 100, scale=1.0, features="all"))
        rows.append(record(seed, random_top1, scale=0.25, features="all"))  # smaller scale
        for bn, acc in ((True, random_top1), (False, random_top1 - 0.2)):  # weaker: not used
            rows.append(
                record(seed, acc, init="random", features="all", bn_recalibrate=bn, scale=None)
            )
        rows.append(record(seed, 0.9, scale=1.0, features="last"))  # another probe, no baseline
    table = findings.findings_table(index(rows))
    row = row_of(table, "baseline", evaluated_on="features=all")
    mean, sd = sum(gains) / 3, stats.tstd(gains)
    assert row["n"] == 3 and row["mean_diff"] == pytest.approx(mean)
    assert (row["ci_lo"], row["ci_hi"]) == pytest.approx((mean - T2 * sd, mean + T2 * sd))
    assert row["verdict"] == "agrees"
    last = table[(table["claim"] == row["claim"]) & table["evaluated_on"].str.contains("last")]
    assert last.empty  # no random-init run with that probe: nothing to pair
