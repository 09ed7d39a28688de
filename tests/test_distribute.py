"""Pix2Pix inside a tf.distribute.MirroredStrategy scope, on two logical CPU devices."""

import json
import subprocess
import sys
from pathlib import Path


def test_mirrored_strategy_trains_with_replicas_in_sync(facades_root, tmp_path):
    script = Path(__file__).with_name("mirrored_run.py")
    result = subprocess.run(
        [sys.executable, str(script), str(facades_root), str(tmp_path / "run")],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["replicas"] == 2 and report["steps"] == 6 and report["in_sync"]
    assert len(report["metrics"]) == 2 and all(0 < v < 2 for v in report["metrics"])
