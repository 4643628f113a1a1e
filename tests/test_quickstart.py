"""The main job end to end with a tiny budget (issue 9): tags -> pretrain -> probes -> table.

CI runs it on the synthetic world: OpenClipart's rasterization (minutes on 2 cores) is covered
by tests/test_sources_openclipart.py on a handful of files, and the full quickstart by the
README's first command.
"""

import json

import pandas as pd
import pytest

from experiments.__main__ import main


@pytest.mark.slow
def test_reduced_quickstart_writes_table_and_figure(tmp_path, capsys):
    runs = tmp_path / "runs"
    args = [
        "quickstart",
        "--data", "synthetic",
        "--images-seen", "1280",
        "--seeds", "0",
        "--ablation", "natural",
        "--max-per-class", "20",
        "--runs-dir", str(runs),
        f"data.cache_dir={tmp_path / 'cache'}",
        "data.source.num_images=800",
        "logging.wandb=false",
    ]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    for name in ("results.md", "results.csv", "results.png", "SUMMARY.txt"):
        assert (runs / name).is_file(), name
    assert (runs / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # every probe is a complete run: 2 pretrained networks + 1 random seed, 2 targets
    metrics = [json.loads(p.read_text()) for p in runs.glob("transfer-*/metrics.json")]
    assert len(metrics) == 6 and all(m["status"] == "complete" for m in metrics)
    assert {m["target"] for m in metrics} == {"synthetic_in", "fashion_mnist"}
    # the table's numbers are the runs' numbers
    stats = pd.read_csv(runs / "results.csv")
    for m in metrics:
        if m["pretrain_run"] == "pretrain-hashtag":
            row = stats[(stats["sampling"] == "sqrt") & (stats["target"] == m["target"])]
            assert row["mean"].item() == pytest.approx(m["top1"])
    table = (runs / "results.md").read_text()
    assert "random init" in table and "| sqrt | softmax | all | False |" in table
    # the figure plots each pretrained network's gain over random init, per target
    gains = pd.read_csv(runs / "gains.csv")
    assert len(gains) == 4  # 2 pretrained networks x 2 targets
    for m in metrics:
        if m["pretrain_run"] == "pretrain-hashtag":
            base = next(b for b in metrics if b["init"] == "random" and b["target"] == m["target"])
            row = gains[(gains["target"] == m["target"]) & gains["network"].str.startswith("sqrt")]
            assert row["gain"].item() == pytest.approx(100 * (m["top1"] - base["top1"]))
    assert "quickstart finished" in out
    # a second run reuses every stage: nothing is retrained or re-probed
    before = {p: p.stat().st_mtime for p in runs.glob("*/metrics.json")}
    assert main(args) == 0
    assert {p: p.stat().st_mtime for p in runs.glob("*/metrics.json")} == before
