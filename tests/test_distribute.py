"""Pix2Pix under tf.distribute: MirroredStrategy on two logical CPU devices, and two workers on loopback."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from p2p import runs
from p2p.runtime import devices

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # child processes
def test_mirrored_strategy_trains_with_replicas_in_sync(facades_root, tmp_path):
    script = Path(__file__).with_name("mirrored_run.py")
    result = subprocess.run(
        [sys.executable, str(script), str(facades_root), str(tmp_path / "run")],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["replicas"] == 2 and report["steps"] == 6 and report["in_sync"]
    assert len(report["metrics"]) == 2 and all(0 < v < 2 for v in report["metrics"])


def test_make_strategy_explains_unknown_names_and_a_missing_tf_config(monkeypatch):
    with pytest.raises(ValueError, match="'nonsense'; choose one of default, mirrored, multi-worker, tpu"):
        devices.make_strategy("nonsense")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="TF_CONFIG environment variable, which is not set") as error:
        devices.make_strategy("multi-worker")
    example = '{"cluster": {"worker": ["host0:12345", "host1:12345"]}, "task": {"type": "worker", "index": 0}}'
    assert f"TF_CONFIG='{example}'" in str(error.value)


def _free_ports(n: int) -> list[int]:
    """n ports free on loopback: bound to port 0, read, and closed again."""
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow  # child processes
def test_two_workers_on_loopback_train_in_step(facades_root, tmp_path):
    """MultiWorkerMirroredStrategy over two processes: the same weights, one run folder written by the chief."""
    script = Path(__file__).with_name("multiworker_run.py")
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    run, temp = tmp_path / "run", tmp_path / "temp"
    temp.mkdir()  # the workers' temporary folders go here, to check that they are removed
    workers = []
    try:
        for index in range(2):
            env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT), "TMPDIR": str(temp),
                   "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
            with (tmp_path / f"{index}.out").open("w") as out, (tmp_path / f"{index}.err").open("w") as err:
                workers.append(subprocess.Popen([sys.executable, str(script), str(facades_root), str(run)],
                                                stdout=out, stderr=err, env=env, cwd=ROOT))
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and any(w.poll() is None for w in workers):
            if any(w.poll() not in (None, 0) for w in workers):
                break  # the other would wait for it in its next collective
            time.sleep(0.2)
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    failed = {index: worker.returncode for index, worker in enumerate(workers) if worker.returncode != 0}
    assert not failed, "\n".join(  # -9: killed, after the other failed or at the timeout
        f"worker {index} exited with {code}:\n{(tmp_path / f'{index}.err').read_text()[-2000:]}"
        for index, code in failed.items()
    )
    reports = [json.loads((tmp_path / f"{index}.out").read_text().strip().splitlines()[-1]) for index in range(2)]

    assert [r["task"] for r in reports] == [0, 1]
    assert all(r["replicas"] == 2 and r["steps"] == 6 for r in reports)
    assert reports[0]["digest"] == reports[1]["digest"], reports
    assert reports[0]["checksum"] == reports[1]["checksum"]
    assert runs.read_metrics(run / "metrics.csv")["step"].tolist() == [3, 6]
    assert (run / "checkpoints" / "ckpt-6.index").exists()
    assert sorted(p.name for p in run.iterdir()) == ["checkpoints", "config.json", "lock", "logs", "metrics.csv", "samples"]
    assert not list(temp.iterdir()), "a worker left its temporary folder"
