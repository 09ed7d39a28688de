"""Training runs: resuming says so, options are checked first, NaN stops the run, one process per run folder."""

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from p2p import config as configs
from p2p import runs, training
from p2p.config import get_preset
from p2p.lab import bookruns
from p2p.runtime import guards, stopping


@pytest.mark.slow  # trains tiny runs for several seconds: the full tier
def test_steps_are_exact_a_resume_is_announced_and_a_finished_run_extends_with_more(facades_root, tmp_path, capsys):
    run = tmp_path / "odd"
    odd = training.train(facades_root, run, "tiny", steps=5, log_every=2, checkpoint_every=2, progress=False)
    assert int(odd.gen_optimizer.iterations.numpy()) == 5  # not rounded up to whole logging intervals
    assert runs.read_metrics(run / "metrics.csv")["step"].tolist() == [2, 4, 5]
    assert tf.train.latest_checkpoint(str(run / "checkpoints")).endswith("ckpt-5")
    again = training.train(facades_root, run, "tiny", steps=5, log_every=2, checkpoint_every=2, progress=False)
    assert int(again.gen_optimizer.iterations.numpy()) == 5  # the same command again: loaded, not trained
    assert "resuming" not in capsys.readouterr().out
    with pytest.raises(ValueError, match="has already trained 5 steps, more than the 4 asked for"):
        training.train(facades_root, run, "tiny", steps=4, log_every=2, checkpoint_every=2, progress=False)
    longer = training.train(facades_root, run, "tiny", steps=9, log_every=2, checkpoint_every=2, progress=False)
    assert f"resuming {run} at step 5 of 9" in capsys.readouterr().out
    assert int(longer.gen_optimizer.iterations.numpy()) == 9
    assert runs.read_metrics(run / "metrics.csv")["step"].tolist() == [2, 4, 5, 7, 9]


def test_compact_weights_round_trip(tmp_path):
    from p2p.models import Generator

    generator = Generator(32, 8)
    bookruns.save_weights_to(generator, tmp_path / "g.npz")
    again = Generator(32, 8)
    runs.set_weights_from(again, tmp_path / "g.npz")
    for a, b in zip(generator.get_weights(), again.get_weights()):
        assert abs(a - b).max() <= 1e-3 * max(abs(a).max(), 1)  # float16: three significant digits
    with pytest.raises(ValueError, match="do not fit"):
        runs.set_weights_from(Generator(64, 8), tmp_path / "g.npz")


def test_the_dropout_rate_is_a_setting_and_a_loaded_generator_keeps_it(tmp_path):
    dropouts = lambda generator: [layer.rate for layer in generator.layers if type(layer).__name__ == "Dropout"]
    assert dropouts(training.build_model(get_preset("tiny", steps=1)).generator) == [0.5, 0.5, 0.5]  # the paper's
    config = get_preset("tiny", steps=1, dropout=0.0)  # chapter "The generator"'s control
    generator = training.build_model(config).generator
    assert dropouts(generator) == []
    (tmp_path / "config.json").write_text(json.dumps(config.to_dict()))
    bookruns.save_weights_to(generator, tmp_path / "generator.npz")
    assert dropouts(runs.load_generator(tmp_path)[0]) == []
    written_before = {k: v for k, v in config.to_dict().items() if k != "dropout"}  # a run from before the setting
    (tmp_path / "config.json").write_text(json.dumps(written_before))
    assert configs.read(tmp_path).dropout == 0.5


@pytest.mark.parametrize("options, message", [
    ({"dropout": 1.0}, "dropout must be a rate, from 0 up to 1, not 1.0"),
    ({"steps": 0}, r"steps must be a whole number of steps, from 1 to 2\*\*31 - 1, not 0"),
    ({"steps": -5}, "steps must be"),
    ({"log_every": 0}, "log_every must be"),
    ({"checkpoint_every": 0}, "checkpoint_every must be"),
    ({"l1_wieght": 10.0}, r"unknown setting\(s\) l1_wieght; the settings are batch_size, direction"),
    ({"direction": "AtoC"}, "unknown direction 'AtoC'; choose one of BtoA, AtoB"),
    ({"lr_decay": 1.5}, "lr_decay must be a share of the steps, from 0 up to 1, not 1.5"),
    ({"gan_weight": 0.0}, r"unknown setting\(s\) gan_weight"),  # the lab's variants: p2p.lab.variants.train
])
def test_bad_options_are_refused_before_anything_is_written(facades_root, tmp_path, options, message):
    with pytest.raises(ValueError, match=message):
        training.train(facades_root, tmp_path / "run", "tiny", progress=False, **{"steps": 2, **options})
    assert not (tmp_path / "run").exists()


@pytest.mark.slow  # trains or measures for several seconds: the full tier, not `make check`
def test_a_nan_loss_stops_the_run_naming_the_step_and_keeps_the_last_good_checkpoint(facades_root, tmp_path, monkeypatch):
    run = tmp_path / "run"
    training.train(facades_root, run, "tiny", steps=4, log_every=2, checkpoint_every=2, progress=False)
    from p2p import losses

    monkeypatch.setattr(losses, "l1_loss", lambda target, output: tf.constant(float("nan")))  # diverges from step 5
    with pytest.raises(stopping.NonFiniteLoss, match=r"stopped at step 5, where the losses became gen_l1 nan, gen_total nan.*"
                                                     r"last good checkpoint \(ckpt-4\) is kept"):
        training.train(facades_root, run, "tiny", steps=8, log_every=2, checkpoint_every=2, progress=False)
    assert tf.train.latest_checkpoint(str(run / "checkpoints")).endswith("ckpt-4")
    assert runs.read_metrics(run / "metrics.csv")["step"].tolist() == [2, 4]  # no NaN row


@pytest.mark.slow  # a child process holds the lock
def test_a_second_process_training_into_the_same_folder_is_refused_naming_the_first(facades_root, tmp_path):
    run = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import time; from p2p.runtime import guards\nwith guards.lock({str(run)!r}):\n"
                               "    print('locked', flush=True); time.sleep(120)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(guards.RunInUse, match=rf"is in use: process {holder.pid} on .* is training into it"):
            training.train(facades_root, run, "tiny", steps=2, log_every=2, progress=False)
        assert not (run / "config.json").exists()
    finally:
        holder.kill()
        holder.wait()
    model = training.train(facades_root, run, "tiny", steps=2, log_every=2, progress=False)  # a killed holder frees it
    assert int(model.gen_optimizer.iterations.numpy()) == 2


@pytest.mark.slow  # trains or measures for several seconds: the full tier, not `make check`
def test_the_same_data_by_another_path_resumes_and_other_data_is_refused(facades_root, tmp_path):
    import shutil

    run = tmp_path / "run"
    training.train(facades_root, run, "tiny", steps=2, log_every=2, progress=False)
    moved = shutil.copytree(facades_root, tmp_path / "moved")  # the same files, elsewhere
    assert int(training.train(moved, run, "tiny", steps=4, log_every=2, progress=False).gen_optimizer.iterations) == 4
    other = shutil.copytree(facades_root, tmp_path / "other")
    (other / "train" / "1.jpg").unlink()  # one file fewer: other data
    with pytest.raises(ValueError, match=r"data \(other files than the run was trained on\) differ"):
        training.train(other, run, "tiny", steps=6, log_every=2, progress=False)


@pytest.mark.slow  # trains or measures for several seconds: the full tier, not `make check`
def test_the_paper_preset_decays_the_learning_rate_over_the_second_half_of_the_run(facades_root, tmp_path):
    preset = dataclasses.replace(get_preset("tiny"), lr_decay=0.5)  # the paper preset's schedule, at the tiny size
    model = training.train(facades_root, tmp_path / "run", preset, steps=4, log_every=2, progress=False)
    for optimizer in (model.gen_optimizer, model.disc_optimizer):
        assert float(optimizer.learning_rate) == 0.0  # after its last step: decayed to zero
    constant = training.train(facades_root, tmp_path / "constant", get_preset("tiny"), steps=4, log_every=2, progress=False)
    assert float(constant.gen_optimizer.learning_rate) == pytest.approx(2e-4)
    assert get_preset("paper").lr_decay == 0.5 and get_preset("cpu").lr_decay == 0.0


@pytest.mark.slow  # trains tiny runs for several seconds: the full tier
def test_settings_are_compared_by_value_and_logging_never_blocks_a_resume_or_an_extension(facades_root, tmp_path):
    run = tmp_path / "run"
    training.train(facades_root, run, "tiny", steps=2, progress=False)  # no log_every: one row at step 2
    written = json.loads((run / "config.json").read_text())
    assert written["l1_weight"] == 100.0 and written["steps"] == 2 and written["precision"] == "float32"  # values, filled in
    # the defaults written out are the same run; other intervals and more steps extend it
    model = training.train(facades_root, run, "tiny", steps=4, l1_weight=100.0, lr_decay=0.0, log_every=1,
                           checkpoint_every=1, progress=False)
    assert int(model.gen_optimizer.iterations.numpy()) == 4
    assert runs.read_metrics(run / "metrics.csv")["step"].tolist() == [2, 3, 4]
    with pytest.raises(ValueError, match=r"other settings \(l1_weight differ\)"):
        training.train(facades_root, run, "tiny", steps=6, l1_weight=10.0, progress=False)


@pytest.mark.parametrize("content, message", [
    ('{"image_size": 32, "colour": "red"}', r"unknown setting\(s\) colour; written by a newer p2p"),
    ("[1, 2]", "not a JSON object"),
    (json.dumps({**get_preset("tiny").to_dict(), "data": [1, 2]}), r"data must name the files the run trained on, not \[1, 2\]"),
    ('{"image_size": 32,', "Expecting"),
])
def test_a_config_json_that_cannot_be_read_is_named(facades_root, tmp_path, content, message):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text(content)
    with pytest.raises(ValueError, match=rf"run/config.json: not a p2p run's config \(.*{message}"):
        training.train(facades_root, tmp_path / "run", "tiny", steps=2, progress=False)


@pytest.mark.slow  # trains or measures for several seconds: the full tier, not `make check`
def test_a_run_folder_of_the_earlier_config_layout_resumes(facades_root, tmp_path):
    training.train(facades_root, tmp_path / "run", "tiny", steps=2, log_every=2, progress=False)
    config_path = tmp_path / "run" / "config.json"
    new = json.loads(config_path.read_text())
    old = {  # as p2p wrote it before Config: the preset (without lr_decay, from before that field), then the model options
        "preset": {"name": "tiny", "image_size": 32, "ngf": 8, "ndf": 8, "n_layers": 1, "batch_size": 1, "epochs": 1,
                   "jit_compile": False, "description": "For tests"},
        "direction": "BtoA", "data": new["data"], "seed": 0, "steps": 2, "log_every": 2, "model": {}, "precision": "float32"}
    config_path.write_text(json.dumps(old))
    model = training.train(facades_root, tmp_path / "run", "tiny", steps=4, log_every=2, progress=False)
    assert int(model.gen_optimizer.iterations.numpy()) == 4


@pytest.mark.slow  # trains tiny runs for several seconds: the full tier
def test_ctrl_c_between_logged_steps_logs_the_steps_since_the_last_row_with_its_checkpoint(facades_root, tmp_path,
                                                                                          monkeypatch, capsys):
    run = tmp_path / "run"
    training.train(facades_root, run, "tiny", steps=3, log_every=3, progress=False)
    real = runs.StopAtStep.on_train_batch_end

    def ctrl_c_at_step_8(self, batch, logs=None):  # resumed at 3: rows at 6, then 9, but Ctrl-C at 8
        real(self, batch, logs)
        if self.step == 8:
            raise KeyboardInterrupt

    monkeypatch.setattr(runs.StopAtStep, "on_train_batch_end", ctrl_c_at_step_8)
    with pytest.raises(KeyboardInterrupt):
        training.train(facades_root, run, "tiny", steps=20, log_every=3, progress=False)
    assert "interrupted at step 8 of 20; saved a checkpoint there" in capsys.readouterr().err
    assert tf.train.latest_checkpoint(str(run / "checkpoints")).endswith("ckpt-8")
    metrics = runs.read_metrics(run / "metrics.csv")
    assert metrics["step"].tolist() == [3, 6, 8]  # steps 7 and 8 are logged, not skipped
    assert all(np.isfinite(metrics[name]).all() for name in metrics)
    monkeypatch.undo()
    training.train(facades_root, run, "tiny", steps=10, log_every=3, progress=False)
    assert runs.read_metrics(run / "metrics.csv")["step"].tolist() == [3, 6, 8, 10]


@pytest.mark.slow  # trains tiny runs for several seconds: the full tier
def test_a_run_folder_that_never_trained_a_step_starts_over_with_other_settings(facades_root, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    left = {**get_preset("tiny", batch_size=500, steps=2, precision="float32").to_dict(),
            "data": {"path": str(facades_root), "fingerprint": "of a run refused before its first step"}}
    (run / "config.json").write_text(json.dumps(left))  # as a run that stopped before its first checkpoint left it
    (run / "metrics.csv").write_text("step,gen_total,gen_gan,gen_l1,disc\r\n1,1.0,1.0,1.0,1.0\r\n")
    model = training.train(facades_root, run, "tiny", steps=2, log_every=2, progress=False)
    assert int(model.gen_optimizer.iterations.numpy()) == 2
    assert json.loads((run / "config.json").read_text())["batch_size"] == 1
    assert runs.read_metrics(run / "metrics.csv")["step"].tolist() == [2]
    with pytest.raises(ValueError, match=r"other settings \(batch_size differ\)"):  # once it has a checkpoint, it is kept
        training.train(facades_root, run, "tiny", steps=4, log_every=2, batch_size=2, progress=False)
