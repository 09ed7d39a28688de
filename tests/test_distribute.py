"""Pix2Pix under tf.distribute: MirroredStrategy on two logical CPU devices, and two workers on loopback.

And what goes wrong with several devices, each one line: a malformed TF_CONFIG, no TPU for --strategy tpu, a
worker that never starts (named after P2P_WORKER_TIMEOUT seconds; Ctrl-C and SIGTERM end the wait).
"""

import json
import os
import signal
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


EXAMPLE_FIX = "e.g. TF_CONFIG="  # every TF_CONFIG refusal shows a TF_CONFIG that works


@pytest.mark.parametrize("tf_config, says", [
    ("{'cluster': {}}", "is not JSON"),
    ("[1]", "is not a JSON object"),
    ('{"task": {"type": "worker", "index": 0}}', 'no "cluster"'),
    ('{"cluster": {"worker": "127.0.0.1:2000"}, "task": {"type": "worker", "index": 0}}', '"worker" is not a list'),
    ('{"cluster": {"worker": []}, "task": {"type": "worker", "index": 0}}', '"worker" is not a list'),
    ('{"cluster": {"worker": ["127.0.0.1"]}, "task": {"type": "worker", "index": 0}}', "'127.0.0.1' is not HOST:PORT"),
    ('{"cluster": {"worker": ["127.0.0.1:99999"]}, "task": {"type": "worker", "index": 0}}',
     "'127.0.0.1:99999' is not HOST:PORT"),
    ('{"cluster": {"worker": ["127.0.0.1:2000", "127.0.0.1:2000"]}, "task": {"type": "worker", "index": 1}}',
     "127.0.0.1:2000 twice"),
    ('{"cluster": {"ps": ["127.0.0.1:2000"]}, "task": {"type": "ps", "index": 0}}', "job 'ps'"),
    ('{"cluster": {"worker": ["127.0.0.1:2000", "127.0.0.1:2001"]}}', 'no "task"'),
    ('{"cluster": {"worker": ["127.0.0.1:2000", "127.0.0.1:2001"]}, "task": {"type": "chief", "index": 0}}',
     "task type 'chief' is not a job of its cluster"),
    ('{"cluster": {"worker": ["127.0.0.1:2000", "127.0.0.1:2001"]}, "task": {"type": "worker", "index": 2}}',
     "task index 2 is out of range: give each worker its own index from 0 to 1"),
    ('{"cluster": {"worker": ["127.0.0.1:2000", "127.0.0.1:2001"]}, "task": {"type": "worker", "index": "1"}}',
     "task index '1' is out of range: give each worker its own index from 0 to 1"),
])
def test_make_strategy_refuses_a_malformed_tf_config_in_one_line(monkeypatch, tf_config, says):
    """Checked before TensorFlow reads it: not a traceback, a silent one-worker run, or TensorFlow's words."""
    monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(ValueError) as error:
        devices.make_strategy("multi-worker")
    message = str(error.value)
    assert "\n" not in message and message.startswith("TF_CONFIG") and says in message, message
    assert EXAMPLE_FIX in message, message


@pytest.mark.parametrize("seconds", ["abc", "inf", "nan", "0", "-1"])
def test_a_bad_worker_timeout_is_refused_before_waiting(monkeypatch, seconds):
    ports = _free_ports(2)
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": [f"127.0.0.1:{port}" for port in ports]},
                                                "task": {"type": "worker", "index": 0}}))
    monkeypatch.setenv("P2P_WORKER_TIMEOUT", seconds)
    with pytest.raises(ValueError, match=f"^P2P_WORKER_TIMEOUT={seconds}: give the seconds to wait for the other "
                                         r"workers, a number above 0 \(default 300\)$"):
        devices.make_strategy("multi-worker")


def test_a_worker_whose_port_is_taken_is_refused(monkeypatch):
    """Its own address in TF_CONFIG held by another program: named, not TensorFlow's bind error or wait."""
    with socket.create_server(("127.0.0.1", 0)) as taken:
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": [address, f"127.0.0.1:{_free_ports(1)[0]}"]},
                                                    "task": {"type": "worker", "index": 0}}))
        with pytest.raises(OSError) as error:
            devices.make_strategy("multi-worker")
    assert str(error.value) == (f"multi-worker: this worker's address {address} in TF_CONFIG cannot be listened on "
                                "(Address already in use): give it a free port in every worker's TF_CONFIG")


def test_train_refuses_a_malformed_tf_config_before_writing(facades_root, tmp_path, monkeypatch, capsys):
    from p2p.__main__ import main

    monkeypatch.setenv("TF_CONFIG", "not json")
    run = tmp_path / "run"
    code = main(["train", "--data", str(facades_root), "--preset", "tiny", "--out", str(run),
                 "--strategy", "multi-worker"])
    err = capsys.readouterr().err.splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: TF_CONFIG is not JSON"), err
    assert not run.exists()


def test_tpu_strategy_without_a_tpu_is_one_line_naming_it(facades_root, tmp_path, monkeypatch, capsys):
    from p2p.__main__ import main

    for name in ("TPU_NAME", "KUBE_GOOGLE_CLOUD_TPU_ENDPOINTS", "TPU_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    run = tmp_path / "run"
    code = main(["train", "--data", str(facades_root), "--preset", "tiny", "--out", str(run), "--strategy", "tpu"])
    err = capsys.readouterr().err.splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("error: --strategy tpu found no TPU") and "TPU_NAME" in err[0], err
    assert "--strategy default" in err[0], err  # the fix: another strategy, or a TPU machine
    assert not run.exists()


def _worker(facades_root, run, cluster, index, tmp_path, **env):
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT), **env,
                   "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
    return subprocess.Popen([sys.executable, "-m", "p2p", "train", "--data", str(facades_root), "--preset", "tiny",
                             "--out", str(run), "--steps", "2", "--strategy", "multi-worker"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment, cwd=ROOT,
                            # as in a terminal: a shell that started the tests in the background passes SIGINT on ignored
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _p2p_lines(stderr: str) -> list[str]:
    """stderr without TensorFlow's own C++ log lines (absl writes some before any setting is read)."""
    return [line for line in stderr.splitlines()
            if line.strip() and not line.startswith(("I0000", "W0000", "E0000", "WARNING: All log messages", "To enable"))]


@pytest.mark.slow  # a child process
@pytest.mark.parametrize("started, missing", [(0, 1), (1, 0)])
def test_a_missing_worker_is_named_after_the_timeout(facades_root, tmp_path, started, missing):
    """One worker of two started: it gives up after P2P_WORKER_TIMEOUT seconds, naming the other, one line, nothing written."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    run = tmp_path / "run"
    begun = time.monotonic()
    worker = _worker(facades_root, run, cluster, started, tmp_path, P2P_WORKER_TIMEOUT="4")
    try:
        _, err = worker.communicate(timeout=120)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.communicate()
    took = time.monotonic() - begun
    lines = _p2p_lines(err)
    assert worker.returncode == 2 and len(lines) == 1, err[-3000:]
    assert lines[0].startswith(f"error: multi-worker: worker {missing} ({cluster['worker'][missing]} in TF_CONFIG) "
                               "did not answer within 4 s"), lines
    assert "P2P_WORKER_TIMEOUT" in lines[0], lines
    assert 4 <= took < 60, took
    assert not run.exists()


@pytest.mark.slow  # a child process
@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGTERM])
def test_waiting_for_a_worker_ends_on_ctrl_c_and_sigterm(facades_root, tmp_path, signal_number):
    """The wait for a missing worker is not deaf: Ctrl-C and SIGTERM end it at once (TensorFlow's rendezvous was)."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    worker = _worker(facades_root, tmp_path / "run", cluster, 0, tmp_path)  # waits up to the default, 300 s
    try:
        host, port = cluster["worker"][0].split(":")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and worker.poll() is None:
            try:  # worker 0 is waiting: it answers on its address, for worker 1 to find it
                socket.create_connection((host, int(port)), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        time.sleep(2)  # well into the wait (TensorFlow's rendezvous, before, ignored both signals for good)
        assert worker.poll() is None, worker.communicate()[1][-3000:]
        worker.send_signal(signal_number)
        _, err = worker.communicate(timeout=20)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.communicate()
    assert worker.returncode == 130, err[-3000:]  # as Ctrl-C and SIGTERM end a training run
    assert _p2p_lines(err) == [f"interrupted while waiting for worker 1 ({cluster['worker'][1]} in TF_CONFIG): "
                               "nothing was written"], err[-3000:]
    assert not (tmp_path / "run").exists()
