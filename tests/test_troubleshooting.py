"""The troubleshooting chapters' options and measures: resize-convolution, InstanceNorm, L2, and what the experiments measure."""

import json
import re

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

from p2p import data, training
from p2p.inference import translate
from p2p.lab import evaluate, facades, troubleshooting
from p2p.models import Discriminator, Generator


@pytest.fixture(scope="module")
def images():
    return tf.random.stateless_uniform((4, 32, 32, 3), seed=[3, 4], minval=-1, maxval=1)


def test_resize_convolution_replaces_every_transposed_convolution():
    resize = Generator(32, 8, upsampling="resize")
    assert resize.output_shape == Generator(32, 8).output_shape == (None, 32, 32, 3)
    assert not any(isinstance(layer, layers.Conv2DTranspose) for layer in resize.layers)
    assert sum(isinstance(layer, layers.UpSampling2D) for layer in resize.layers) == 5  # one per halving of 32
    assert troubleshooting.size_multiple(resize) == 32  # its 3x3 convolutions keep the size


def test_the_default_generator_is_the_papers(images):
    keras.utils.set_random_seed(0)
    default = Generator(32, 8)
    keras.utils.set_random_seed(0)
    explicit = Generator(32, 8, upsampling="transpose", norm="batch")
    assert [w.shape for w in default.get_weights()] == [w.shape for w in explicit.get_weights()]
    np.testing.assert_array_equal(default(images).numpy(), explicit(images).numpy())


@pytest.mark.parametrize("norm, independent", [("instance", True), ("batch", False)])
def test_only_instancenorm_translates_each_image_as_if_it_were_alone(images, norm, independent):
    generator = Generator(32, 8, norm=norm, dropout=0.0)
    alone = translate(generator, images)
    batched = evaluate.in_batches(generator, images, 4)
    largest = float(tf.reduce_max(tf.abs(batched - alone)))
    assert largest < 1e-4 if independent else largest > 0.05


@pytest.mark.parametrize("option, value", [("upsampling", "deconv"), ("norm", "layer")])
def test_an_unknown_generator_option_names_the_choices(option, value):
    with pytest.raises(ValueError, match=f"unknown {option} '{value}'; choose one of"):
        Generator(32, 8, **{option: value})


def test_the_checkerboard_score_is_the_patterns_amplitude():
    y, x = np.mgrid[0:32, 0:32]
    board = np.where((y + x) % 2, 0.3, -0.3)[None, ..., None] * np.ones(3)
    ramp = ((y + 2 * x) / 100.0)[None, ..., None] * np.ones(3)
    assert evaluate.checkerboard(board) == pytest.approx(0.3)
    assert evaluate.checkerboard(ramp) == pytest.approx(0.0, abs=1e-6)
    assert evaluate.checkerboard(ramp + board) == pytest.approx(0.3)


def test_flicker_undoes_the_motion_of_a_pan(images):
    scene = images[0].numpy()
    pan = np.stack([scene[:, t:t + 16] for t in range(8)])  # content moves one pixel left per frame
    assert evaluate.flicker(pan, shift=1) == 0.0
    assert evaluate.flicker(pan, shift=0) > 0.1  # without undoing it, the motion counts as flicker
    still = np.repeat(scene[None], 3, axis=0)
    assert evaluate.flicker(still, shift=0) == 0.0


def test_pixel_spread_and_the_label_colour_share():
    assert evaluate.pixel_spread(np.stack([np.zeros((4, 4, 3)), np.ones((4, 4, 3))])) == 0.5
    labels = facades.label_map(facades.random_facade(np.random.default_rng(0)), 64)
    assert evaluate.label_colour_share(data.normalize(facades.colorize(labels))[None]) == 1.0
    photo = facades.render_photo(labels, np.random.default_rng(1))
    assert evaluate.label_colour_share(data.normalize(photo)[None]) < 0.2


def test_a_rebuilt_generator_without_dropout_computes_what_the_generator_does_with_dropout_off(images):
    generator = Generator(32, 8)
    same = troubleshooting.rebuilt(generator, dropout=False)
    assert not any(isinstance(layer, layers.Dropout) and layer.rate for layer in same.layers)
    # two graphs through ten BatchNorms at batch size 1: float32 rounding of ~1e-6; a wrong weight moves outputs by > 0.1
    np.testing.assert_allclose(translate(same, images).numpy(), translate(generator, images, dropout=False).numpy(), atol=1e-5)


@pytest.mark.slow  # trains or measures for several seconds: the full tier, not `make check`
def test_larger_and_non_square_inputs_go_through_the_same_weights(images):
    scores = troubleshooting.larger_inputs(Generator(32, 8), images, images, grids=((1, 1), (1, 2)))
    assert set(scores) == {"32x32 whole", "32x32 tile by tile", "32x64 whole", "32x64 tile by tile"}
    assert scores["32x32 whole"] == pytest.approx(scores["32x32 tile by tile"], abs=1e-6)  # the same size: the same outputs
    assert scores["32x64 whole"]["l1"] != scores["32x64 tile by tile"]["l1"]  # a wider image: its own statistics and context


def test_a_size_the_generator_cannot_take_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="multiples of 32. Resize, pad or crop the image to 32x64"):
        troubleshooting.rebuilt(Generator(32, 8), 32, 50)


def test_tile_lays_images_out_in_a_grid(images):
    grid = troubleshooting.tile(images, 2, 2)
    assert grid.shape == (1, 64, 64, 3)
    np.testing.assert_array_equal(grid[0, 32:, :32].numpy(), images[2].numpy())


def test_pooled_batches_leave_the_moving_statistics_alone(images):
    generator = Generator(32, 8)
    before = [w.copy() for w in generator.get_weights()]
    evaluate.in_batches(generator, images, 2)
    for old, new in zip(before, generator.get_weights()):
        np.testing.assert_array_equal(old, new)


def test_batch_statistics_measure_what_batching_changes(images):
    for norm, changes in (("instance", False), ("batch", True)):
        ways = troubleshooting.batch_statistics(Generator(32, 8, norm=norm), images, images, batch_size=2)
        assert ways["one at a time"]["change from one at a time"] == 0.0
        assert (ways["batches of 2"]["change from one at a time"] > 0.01) == changes


def test_the_spread_of_dropout_and_of_renderings():
    labels = [facades.label_map(facades.random_facade(np.random.default_rng(s)), 32) for s in range(2)]
    without = troubleshooting.mode_collapse(Generator(32, 8, dropout=0.0), labels, draws=3)
    assert without["G, dropout draws"]["pixel spread"] == pytest.approx(0.0, abs=1e-6)
    assert without["renderings"]["pixel spread"] > 0.1
    assert troubleshooting.mode_collapse(Generator(32, 8), labels, draws=3)["G, dropout draws"]["pixel spread"] > 0


def test_video_flicker_of_a_still_camera_is_dropouts_alone():
    flicker = troubleshooting.video_flicker(Generator(32, 8), facades.Facade(), frames=4, speeds=(0, 1))
    assert all(way["label maps"] == 0.0 for way in flicker.values())
    assert flicker[0]["dropout off"] == 0.0  # each frame is its own call on the same input: exactly the same output
    # training=False runs the four frames as one batch, whose rows need not round alike: ~1e-7; dropout's flicker is ~0.05
    assert flicker[0]["training=False"] == pytest.approx(0.0, abs=1e-6) and flicker[0]["dropout on"] > 0


def test_discriminator_verdicts_are_probabilities_and_gradients(images):
    verdicts = troubleshooting.discriminator_verdicts(Generator(32, 8), Discriminator(32, 8, 1), images, images)
    assert all(0.0 <= value <= 1.0 for value in verdicts.values())
    # mean(1 - p) against 1 - mean(p): float32 rounding, ~3e-8
    assert verdicts["gradient_non_saturating"] == pytest.approx(1.0 - verdicts["p_real_on_generated"], abs=1e-6)


def test_misaligned_copy_moves_each_photo_by_the_shift(tmp_path, facades_root):
    moved = troubleshooting.misaligned_copy(facades_root, tmp_path / "moved", shift=3)
    for (original,) in data.list_pairs(facades_root / "train")[:5]:
        before, after = data.decode_rgb(original), data.decode_rgb(moved / "train" / f"{original.stem}.png")
        np.testing.assert_array_equal(after[:, 64:], before[:, 64:])  # the label map stays
        offsets = [(dy, dx) for dy, dx in ((3, 0), (-3, 0), (0, 3), (0, -3))
                   if np.array_equal(after[8:-8, 8:24], before[8 - dy:56 - dy, 8 - dx:24 - dx])]
        assert len(offsets) == 1
    stamp = (moved / "misaligned.json").stat().st_mtime_ns
    troubleshooting.misaligned_copy(facades_root, tmp_path / "moved", shift=3)
    assert (moved / "misaligned.json").stat().st_mtime_ns == stamp  # done once


@pytest.mark.slow  # trains two tiny runs
def test_the_runner_records_each_run_and_resumes(tmp_path, monkeypatch):
    two = {"baseline": {}, "batch 4, InstanceNorm": {"batch_size": 4, "norm": "instance"}}
    monkeypatch.setattr(troubleshooting, "VARIANTS", two)
    results = troubleshooting.run_troubleshooting(tmp_path, "tiny", steps=2, seeds=(0,), progress=False)
    assert set(results["runs"]) == {"baseline / seed 0", "batch 4, InstanceNorm / seed 0"}
    run = results["runs"]["batch 4, InstanceNorm / seed 0"]
    assert run["curves"]["step"][-1] == 2 and 0 < run["l1"] < 2
    assert run["test_batching"]["batches of 4"]["change from one at a time"] < 1e-4
    assert results["cpu_seconds"] > 0 and {"commit", "date", "machine"} <= set(results["provenance"])
    assert json.loads((tmp_path / "results.json").read_text())["runs"].keys() == results["runs"].keys()
    trained = []
    monkeypatch.setattr(training, "train", lambda *args, **kwargs: trained.append(args))
    troubleshooting.run_troubleshooting(tmp_path, "tiny", steps=2, seeds=(0,), progress=False)
    assert trained == []  # every run was already in results.json
    with pytest.raises(ValueError, match=r"results.json: made with other settings \(steps 2 there, 3 now\)"):
        troubleshooting.run_troubleshooting(tmp_path, "tiny", steps=3, seeds=(0,), progress=False)


class _Trained(Exception):
    """Raised where the runner would start its work: the results folder was accepted."""


@pytest.mark.parametrize("content, why", [
    ('{"accuracy": 0.9}', 'no "config" and "runs"'),
    ("my notes", "unreadable as JSON"),
    (json.dumps({"kind": "ablate", "config": {"preset": "tiny"}, "runs": {}}), "the results of `python -m p2p ablate`"),
], ids=["a user's JSON", "not JSON", "ablate's"])
def test_a_results_json_not_of_troubleshoot_is_refused_naming_it(tmp_path, monkeypatch, content, why):
    monkeypatch.setattr(facades, "make_facades", lambda *args, **kwargs: (_ for _ in ()).throw(_Trained))
    (tmp_path / "results.json").write_text(content)
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path / 'results.json'}: ") + ".*" + re.escape(why) + ".*" +
                       re.escape("`python -m p2p troubleshoot`: give another --out, or move it away")) as raised:
        troubleshooting.run_troubleshooting(tmp_path, "tiny", steps=2, seeds=(0,), progress=False)
    assert "\n" not in str(raised.value) and [p.name for p in tmp_path.iterdir()] == ["results.json"]
    assert (tmp_path / "results.json").read_text() == content


def test_changed_settings_of_troubleshoot_are_named_with_both_values(tmp_path, monkeypatch):
    monkeypatch.setattr(facades, "make_facades", lambda *args, **kwargs: (_ for _ in ()).throw(_Trained))
    settings = {"preset": "tiny", "image_size": 32, "steps": 2, "seeds": [0]}
    (tmp_path / "results.json").write_text(json.dumps({"kind": "troubleshoot", "config": settings, "runs": {}}))
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path / 'results.json'}: made with other settings (steps 2 there, 3 "
                                                   "now; seeds [0] there, [0, 1] now): use another --out, or delete it")):
        troubleshooting.run_troubleshooting(tmp_path, "tiny", steps=3, seeds=(0, 1), progress=False)
    with pytest.raises(_Trained):
        troubleshooting.run_troubleshooting(tmp_path, "tiny", steps=2, seeds=(0,), progress=False)
