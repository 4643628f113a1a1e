"""The shard benchmarks run end to end through the CLI at toy sizes and report consistent
figures: `bench loader --shards`, `bench write --processes`, `bench corpus`."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def _bench(tmp_path, *args: str) -> dict:
    out = tmp_path / "bench.json"
    cmd = [sys.executable, "-m", "experiments", "bench", *args, "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


def test_bench_loader_shards_side_by_side(tmp_path):
    f = _bench(
        tmp_path, "loader", "--shards", "3", "--images", "48", "--size", "32",
        "--resolution", "24", "--batch", "8", "--epochs", "1", "--workers", "1",
        "--cache-dir", str(tmp_path / "cache"),
    )  # fmt: skip
    assert f["shards"] == 3 and f["one_shard_images_per_s"] > 0 and f["3_shards_images_per_s"] > 0
    assert f["shards_over_one"] == pytest.approx(
        f["3_shards_images_per_s"] / f["one_shard_images_per_s"], abs=0.002
    )
    assert len(f["compile"]["loader_per_shard_s_each"]) == 3
    manifest = json.loads(next((tmp_path / "cache").rglob("shards3/manifest.json")).read_text())
    assert [e["count"] for e in manifest["train"]] == [16, 16, 16]


def test_bench_write_processes(tmp_path):
    f = _bench(
        tmp_path, "write", "--processes", "1", "2", "--images", "64", "--size", "32",
        "--shards", "2",
    )  # fmt: skip
    assert [r["processes"] for r in f["runs"]] == [1, 2]
    assert set(f["images_per_s"]) == {"1", "2"} and all(v > 0 for v in f["images_per_s"].values())


def test_bench_corpus_prepares_in_shards_and_reads_an_epoch(tmp_path):
    f = _bench(
        tmp_path, "corpus", "--images", "400", "--shards", "4", "--size", "16",
        "--resolution", "16", "--batch", "32", "--processes", "2", "--workers", "1",
        "--cache-dir", str(tmp_path / "cache"),
    )  # fmt: skip
    assert f["shards"] == 4 and f["prepare_s"] > 0 and f["read_epoch_s"] > 0
    assert f["read_images"] == f["train_images"] // 32 * 32
    assert f["sampler_bytes_per_image"] <= 8.0
