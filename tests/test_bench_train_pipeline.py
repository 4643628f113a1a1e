"""`bench train --pipeline`: the real HashtagDataModule step beside in-memory tensors, one run."""

import json

import pytest

from experiments.__main__ import main


@pytest.mark.slow
def test_pipeline_mode_times_both_paths_on_a_prepared_folder(tmp_path):
    out = tmp_path / "train.json"
    args = [
        "bench", "train", "--out", str(out),
        "--pipeline", "configs/pretrain/tiny_cpu.yaml",
        "--pipeline-warmup", "1", "--pipeline-steps", "3",
        "data.source.num_images=400", f"data.cache_dir={tmp_path / 'cache'}", "logging.wandb=false",
    ]  # fmt: skip
    assert main(args) == 0
    r = json.loads(out.read_text())
    assert r["timed_steps"] == 3 and r["batch"] == 64 and r["resolution"] == 64
    assert (tmp_path / "cache" / "prepared").is_dir() and r["prepared"].startswith(str(tmp_path))
    assert r["pipeline_images_per_s"] > 0 and r["in_memory_images_per_s"] > 0
    assert r["ratio"] == pytest.approx(
        r["pipeline_images_per_s"] / r["in_memory_images_per_s"], abs=1e-3
    )
