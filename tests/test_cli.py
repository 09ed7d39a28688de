"""The command line in child processes: train, translate, a run killed with SIGKILL that resumes, Ctrl-C and SIGTERM."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from p2p import runs
from p2p.runtime import guards

pytestmark = pytest.mark.slow  # each test starts Python and TensorFlow in a child process


def _p2p(*args, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "p2p", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def _run(*args, timeout=600):
    process = _p2p(*args)
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def test_train_then_translate(facades_root, tmp_path):
    run = tmp_path / "run"
    code, _, err = _run("train", "--data", facades_root, "--preset", "tiny", "--out", run, "--steps", "20",
                        "--log-every", "10", "--checkpoint-every", "10")
    assert code == 0, err[-2000:]
    assert json.loads((run / "config.json").read_text())["preset"] == "tiny"
    assert runs.read_metrics(run / "metrics.csv")["step"].tolist() == [10, 20]
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step_0000010.png", "step_0000020.png"]
    assert list((run / "logs").iterdir()), "no TensorBoard events"
    code, _, err = _run("translate", "--run", run, facades_root / "test" / "1.jpg", facades_root / "test" / "2.jpg",
                        facades_root / "train" / "1.jpg", "--out", tmp_path / "out", "--pairs")
    assert code == 0, err[-2000:]
    outputs = [np.asarray(Image.open(tmp_path / "out" / name)) for name in ("1.png", "2.png", "1-2.png")]
    assert all(image.shape == (64, 64, 3) for image in outputs)  # each at its own size: the 64x64 input half
    assert outputs[0].std() > 0
    assert not np.array_equal(outputs[0], outputs[2])  # test/1.jpg and train/1.jpg: both kept, neither overwritten
    # the same run with other settings is refused, with the reason
    code, _, err = _run("train", "--data", facades_root, "--preset", "cpu", "--out", run)
    assert code == 2 and "image_size, ngf, ndf, n_layers differ" in err and "new run folder" in err


def test_train_names_the_bad_file(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "broken.jpg").write_bytes(b"not an image")
    code, _, err = _run("train", "--data", tmp_path / "data", "--preset", "tiny", "--out", tmp_path / "run")
    assert code == 2 and "broken.jpg" in err and "cannot be decoded" in err


def test_train_passes_the_strategy_on(facades_root, tmp_path):
    code, _, err = _run("train", "--data", facades_root, "--out", tmp_path / "run", "--strategy", "nonsense")
    assert code == 2 and "multi-worker" in err  # argparse lists the choices
    without_tf_config = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    process = _p2p("train", "--data", facades_root, "--preset", "tiny", "--out", tmp_path / "run",
                   "--strategy", "multi-worker", env=without_tf_config)
    _, err = process.communicate(timeout=600)
    assert process.returncode == 2 and "TF_CONFIG" in err, err[-2000:]
    assert not (tmp_path / "run").exists()  # the strategy comes first, before the run folder


def test_a_killed_run_resumes_from_its_last_checkpoint(facades_root, tmp_path):
    run = tmp_path / "run"
    args = ("train", "--data", facades_root, "--preset", "tiny", "--out", run, "--steps", "300",
            "--log-every", "5", "--checkpoint-every", "20")
    process = _p2p(*args)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if (run / "metrics.csv").exists() and len((run / "metrics.csv").read_text().splitlines()) > 9:
            break  # past the checkpoint at step 40
        time.sleep(0.05)
    assert process.poll() is None, "the run ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    before = runs.read_metrics(run / "metrics.csv")
    checkpoint = max(int(p.stem.split("-")[1]) for p in (run / "checkpoints").glob("ckpt-*.index"))
    assert checkpoint >= 40 and before["step"].max() > checkpoint

    code, _, err = _run(*args)
    assert code == 0, err[-2000:]
    after = runs.read_metrics(run / "metrics.csv")
    assert after["step"].tolist() == list(range(5, 301, 5))  # every row once, nothing missing
    kept = before["step"] <= checkpoint
    for name in before:  # what was logged up to the checkpoint is kept as it was
        np.testing.assert_array_equal(after[name][: kept.sum()], before[name][kept])
    assert "train:" in err and f"{checkpoint}/300" in err  # the progress bar starts at the checkpoint


def test_train_never_takes_its_thread_pools_from_the_benchmarks_saved_file(facades_root, tmp_path):
    env = {**os.environ, "P2P_CACHE": str(tmp_path / "cache")}
    measure = "from p2p.lab import threads; threads.record_thread_pools('tiny', (2, 1))"
    subprocess.run([sys.executable, "-c", measure], env=env, check=True)
    command = [sys.executable, "-m", "p2p", "train", "--data", str(facades_root), "--preset", "tiny", "--steps", "2",
               "--log-every", "2"]
    measured = subprocess.run([*command, "--out", str(tmp_path / "a")], env=env, capture_output=True, text=True)
    assert measured.returncode == 0, measured.stderr[-2000:]
    assert "thread pools" not in measured.stderr  # TensorFlow's default: the benchmark's file is the lab's
    chosen = subprocess.run([*command, "--out", str(tmp_path / "b"), "--threads", "2", "1"], env=env,
                            capture_output=True, text=True)
    assert chosen.returncode == 0, chosen.stderr[-2000:]  # an explicit --threads is taken


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_or_sigterm_saves_a_checkpoint_says_so_in_one_line_and_the_run_resumes(facades_root, tmp_path, stop):
    run = tmp_path / "run"
    # as in a terminal: a shell that started the tests in the background (CI, nohup) passes SIGINT on ignored
    process = _p2p("train", "--data", facades_root, "--preset", "tiny", "--out", run, "--steps", "100000",
                   "--log-every", "7", "--checkpoint-every", "1000",
                   preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 300
    while not (run / "metrics.csv").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)  # some steps past the first row, none checkpointed yet
    from p2p import training  # the run folder is locked while fit runs

    with pytest.raises(guards.RunInUse, match=f"process {process.pid} on"):
        training.train(facades_root, run, "tiny", steps=100000, log_every=7, progress=False)
    process.send_signal(stop)  # SIGTERM: what kill, Docker and Colab send
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err[-2000:]
    lines = [line for line in err.splitlines() if "interrupted" in line]
    assert len(lines) == 1 and "Traceback" not in err, err[-2000:]
    step = int(lines[0].split("interrupted at step ")[1].split()[0])
    assert step > 7 and tf.train.latest_checkpoint(str(run / "checkpoints")).endswith(f"ckpt-{step}")
    code, out, err = _run("train", "--data", facades_root, "--preset", "tiny", "--out", run, "--steps", str(step + 3),
                          "--log-every", "7", "--checkpoint-every", "1000")
    assert code == 0 and f"resuming {run} at step {step} of {step + 3}" in out, err[-2000:]


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_second_signal_while_the_checkpoint_is_saved_is_ignored_and_the_line_still_said(tmp_path, stop):
    # the first signal stops fit; the second arrives while the checkpoint is written (SIGTERM's default kills at once)
    script = f"""
import os, signal, sys, time
import tensorflow as tf
from p2p.runtime import stopping

class Model:
    gen_optimizer = type("Optimizer", (), {{"iterations": tf.Variable(7)}})()

def save(step):
    os.kill(os.getpid(), {int(stop)})
    time.sleep(0.5)
    open({str(tmp_path / "saved")!r}, "w").write(str(step))

try:
    with stopping.checkpoint_on_interrupt(Model(), save, 10):
        # and the other at once, as from a busy step: on its way while the first is handled
        signal.pthread_sigmask(signal.SIG_BLOCK, {{signal.SIGINT, signal.SIGTERM}})
        os.kill(os.getpid(), {int(stop)})
        os.kill(os.getpid(), {int(signal.SIGTERM if stop == signal.SIGINT else signal.SIGINT)})
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {{signal.SIGINT, signal.SIGTERM}})
        time.sleep(5)
except KeyboardInterrupt:
    sys.exit(130)
"""
    process = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert process.returncode == 130 and "Traceback" not in process.stderr, process.stderr[-2000:]
    assert (tmp_path / "saved").read_text() == "7"
    assert process.stderr.splitlines()[-1] == "interrupted at step 7 of 10; saved a checkpoint there: run the same " \
                                              "command again to resume", process.stderr[-2000:]
