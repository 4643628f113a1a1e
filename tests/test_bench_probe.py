"""`bench probe` runs through the CLI and reports both thread settings for every size."""

from __future__ import annotations

import json

from experiments.__main__ import main


def test_bench_probe_times_both_thread_settings_per_size(tmp_path):
    out = tmp_path / "probe.json"
    args = ["bench", "probe", "--images", "60", "90", "--dim", "16", "--classes", "3"]
    assert main([*args, "--repeats", "1", "--threads", "2", "--out", str(out)]) == 0
    figures = json.loads(out.read_text())
    assert figures["torch_threads"] == 2 and figures["dim"] == 16
    assert set(figures["images"]) == {"60", "90"}
    for size in figures["images"].values():
        times = size["path_s"]
        assert set(times) == {"vector_ops_1_thread", "vector_ops_2_threads"}
        assert all(t > 0 for t in times.values())
        expected = times["vector_ops_2_threads"] / times["vector_ops_1_thread"]
        assert abs(size["speedup_1_thread"] - expected) <= 0.01 * expected + 0.006
