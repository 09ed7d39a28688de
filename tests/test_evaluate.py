"""Image metrics, the FCN-score and its segmenter."""

import numpy as np
import pytest
import tensorflow as tf

from p2p import data
from p2p.lab import evaluate, facades


def test_image_metrics():
    a = tf.random.stateless_uniform((2, 16, 16, 3), seed=[1, 2], minval=-1, maxval=1)
    same, noisy = evaluate.image_metrics(a, a * 0.999), evaluate.image_metrics(a, tf.zeros_like(a))
    assert same["ssim"] > 0.99 and same["l1"] < 1e-3 and same["psnr"] > noisy["psnr"]
    # |a - 0| is |a| exactly, and both sides are the same float32 mean over 1,536 values: ~1e-7 relative at most
    assert noisy["l1"] == pytest.approx(float(tf.reduce_mean(tf.abs(a))), rel=1e-6)


def test_class_maps_undo_jpeg_drift(facades_root):
    inputs, _ = data.example_batch(facades_root / "test", 8, image_size=64)
    classes = evaluate.class_maps(inputs)
    recoloured = data.normalize(facades.COLORS[classes.numpy()])
    assert float(tf.reduce_mean(tf.abs(recoloured - inputs))) < 0.05


def _perfect(photos, training=False):
    """A 'segmenter' that reads the classes off label-map colours: gives the labels back exactly."""
    return tf.one_hot(evaluate.class_maps(photos), evaluate.N_CLASSES)


def test_fcn_scores_of_perfect_and_constant_segmenters(facades_root):
    inputs, _ = data.example_batch(facades_root / "test", 8, image_size=64)
    # exact: the scores are ratios of integer counts, here equal ones (the 'segmenter' reruns class_maps on the same batch)
    assert evaluate.fcn_scores(_perfect, inputs, inputs) == {"per_pixel_acc": 1.0, "per_class_acc": 1.0, "class_iou": 1.0}
    facade_only = lambda photos, training=False: tf.one_hot(tf.ones(tf.shape(photos)[:3], tf.int32), evaluate.N_CLASSES)
    scores = evaluate.fcn_scores(facade_only, inputs, inputs)
    share = float(tf.reduce_mean(tf.cast(evaluate.class_maps(inputs) == 1, tf.float32)))
    # share is a float32 mean of 32,768 zeros and ones: the count is exact, the division off by ~6e-8
    assert scores["per_pixel_acc"] == pytest.approx(share, abs=1e-6)
    present = len(np.unique(evaluate.class_maps(inputs).numpy()))
    assert scores["per_class_acc"] == pytest.approx(1 / present)  # (1 + 0 + ... + 0) / n in float64: 1 / n to the last bit


@pytest.mark.slow  # trains or measures for several seconds: the full tier, not `make check`
def test_segmenter_learns_the_real_photos(facades_root):
    segmenter = evaluate.train_segmenter(facades_root, 32, steps=150, ngf=8, batch_size=4)
    inputs, targets = data.example_batch(facades_root / "test", 32, image_size=32)
    scores = evaluate.fcn_scores(segmenter, targets, inputs)
    facade_share = float(tf.reduce_mean(tf.cast(evaluate.class_maps(inputs) == 1, tf.float32)))
    assert scores["per_pixel_acc"] > facade_share  # better than calling everything wall


def test_blur_measures_on_known_images():
    flat = tf.fill((4, 16, 16, 3), 0.2)
    measures = evaluate.blur_measures(flat, flat)
    assert measures["l1"] == 0.0  # |x - x| is exactly 0
    # The others are 0 in exact arithmetic, not in float32: the grey (a mean of three 0.2s) and the Laplacian's sum of
    # five terms round differently with the kernel and the CPU (2.98e-08 on an AMD EPYC, where 0.8 has ulps of 6e-8).
    # Each rounding is at most a half-ulp of a value under 1, 3e-8, so the residue stays under ~3e-7; 1e-6 leaves room
    # and is still 1e5 times below any picture's measures (0.19 to 0.39 for the procedural facades and their labels).
    assert measures == pytest.approx({"sharpness": 0.0, "colour_spread": 0.0, "colourfulness": 0.0, "l1": 0.0}, abs=1e-6)
    columns = tf.cast(tf.reshape(tf.range(16 * 16) % 2 * 2 - 1, (1, 16, 16, 1)), tf.float32)  # columns of +1 and -1
    stripes = tf.tile(columns, (1, 1, 1, 3))
    # Below, every input is +-1: exact in float32 except for the divisions by 3 and the final means, ~1e-7 relative
    assert evaluate.sharpness(stripes) == pytest.approx(4.0, rel=1e-6)  # the Laplacian is +-4 at every pixel
    red_and_blue = tf.constant([[[[1.0, -1, -1]]], [[[-1.0, -1, 1]]]])
    assert evaluate.colour_spread(red_and_blue) == pytest.approx(2 / 3, rel=1e-6)  # R and B spread by 1, G not at all
    assert evaluate.colourfulness(red_and_blue) == pytest.approx(8 / 9, rel=1e-6)  # |1 + 1/3| + 2 |-1 + 1/3|, over 3


def test_window_contrast_sees_windows_where_the_label_map_has_them():
    labels = facades.label_map(facades.Facade(floors=3, windows_per_floor=3), 64)
    label_image = data.normalize(facades.colorize(labels))[None]
    dark_windows = tf.where((labels == facades.CLASSES.index("window"))[None, ..., None], -0.8, 0.6) * tf.ones((1, 64, 64, 3))
    assert evaluate.window_contrast(dark_windows, label_image) > 1.5
    assert evaluate.window_contrast(-dark_windows, label_image) < -1.5  # light windows on a dark wall
    assert evaluate.window_contrast(tf.random.stateless_uniform((1, 64, 64, 3), [0, 1]), label_image) == pytest.approx(0, abs=0.1)


def test_grid_noise_is_the_amplitude_of_a_printed_grid():
    rng = np.random.default_rng(0)
    rows, columns = np.meshgrid(np.arange(32), np.arange(32), indexing="ij")
    grid = 0.2 * np.cos(np.pi * rows / 2) * np.cos(np.pi * columns / 2)  # a 4-pixel grid, off both axes
    courses = 0.5 * np.cos(np.pi * rows / 2)  # brick courses every 4 rows: on an axis, not a grid
    noise = rng.normal(0, 0.05, (4, 32, 32, 3))
    assert evaluate.grid_noise(noise) < 0.01  # white noise: no peak above its neighbours
    assert evaluate.grid_noise(noise + courses[None, ..., None]) < 0.01
    # a separable cosine of amplitude 0.2 has RMS 0.2 / 2, in four frequency components
    assert evaluate.grid_noise(noise + grid[None, ..., None]) == pytest.approx(0.1, abs=0.01)
