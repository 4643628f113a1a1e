"""scripts/world_pilot.py (the pilot behind the synthetic world and the mini budget) runs at a
tiny size and reports every pretraining and the random baseline on both probes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_world_pilot_reports_each_size_and_the_random_baseline(tmp_path):
    proc = subprocess.run(
        [sys.executable, "scripts/world_pilot.py", "32", "256", "64"],
        cwd=REPO,
        env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "ROOT": ""},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    size, seen, payload = result.split(" ", 3)[1:]
    assert (size, seen) == ("32", "256")
    figures = json.loads(payload)
    assert set(figures) == {"pre64", "random"}
    for full, shot in figures.values():
        # a top-1 over 2,500 val images: a multiple of 1/2500, above zero for 50 classes
        assert 0 < full <= 1 and 0 < shot <= 1
        assert round(full * 2500) == pytest.approx(full * 2500, abs=0.3)
