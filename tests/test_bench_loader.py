"""`bench loader` runs end to end through the CLI on a few small JPEGs and reports consistent
figures (rates, ratios and the decode limit)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_bench_loader_reports_rates_and_ratios(tmp_path):
    out = tmp_path / "loader.json"
    cmd = [sys.executable, "-m", "experiments", "bench", "loader", "--images", "96"]
    cmd += ["--size", "64", "--resolution", "32", "--batch", "16", "--epochs", "1"]
    cmd += ["--cache-dir", str(tmp_path / "cache"), "--out", str(out)]
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=600)
    f = json.loads(out.read_text())
    assert (f["images"], f["stored_px"], f["crop_px"], f["batch"]) == (96, 64, 32, 16)
    for key in ("ffcv", "pil", "pil_tensor_ops", "decode_1core"):
        assert f[f"{key}_images_per_s"] > 0
    assert f["decode_limit_images_per_s"] == pytest.approx(
        f["decode_1core_images_per_s"] * f["workers"], abs=0.2
    )
    assert f["ffcv_over_pil"] == pytest.approx(
        f["ffcv_images_per_s"] / f["pil_images_per_s"], abs=0.01
    )
    assert f["ffcv_over_decode_limit"] == pytest.approx(
        f["ffcv_images_per_s"] / f["decode_limit_images_per_s"], abs=0.01
    )
