"""`bench sampling` runs end to end through the CLI and reports what the run would hold."""

from __future__ import annotations

import json
import subprocess
import sys


def test_bench_sampling_reports_stages_and_8_bytes_per_image(tmp_path):
    out = tmp_path / "sampling.json"
    cmd = [sys.executable, "-m", "experiments", "bench", "sampling", "--images", "300000"]
    cmd += ["--vocab", "500", "--pool", "70000", "--chunk", "50000", "--out", str(out)]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    figures = json.loads(out.read_text())
    assert figures["images"] == figures["draws"] == 300_000
    assert figures["bytes_per_image"] == 8.0
    stages = figures["counts_s"] + figures["weights_s"] + figures["draw_s"]
    assert abs(figures["total_s"] - stages) <= 0.03
    assert min(figures["counts_s"], figures["weights_s"], figures["draw_s"]) >= 0
