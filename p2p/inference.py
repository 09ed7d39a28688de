"""Test time as the paper runs it: each image through G on its own, dropout on.

Explained in the chapter "Running a run". The paper tests at batch size 1 with
`training=True`, BatchNorm using the test image's own statistics: a batch of several
would pool them, each output depending on the others. `translate` is the one way test
images reach a generator.
"""

from __future__ import annotations

import contextlib
import functools
import weakref

import keras
import tensorflow as tf

# One compiled translator per generator and dropout setting, built on first use.
_TRANSLATORS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def translate(generator: keras.Model, inputs, *, dropout: bool = True) -> tf.Tensor:
    """Translate a batch of test images one at a time, the paper's way."""
    inputs = check_images(generator, inputs)
    translators = _TRANSLATORS.setdefault(generator, {})
    if dropout not in translators:  # dropout=False: a deterministic translator
        translators[dropout] = _one_by_one(generator, dropout)
    # BatchNorm's moving averages, which pix2pix never uses, stay as they were
    with moving_statistics_kept(generator):
        return translators[dropout](inputs)


def check_images(generator: keras.Model, images) -> tf.Tensor:
    """The batch as float32, or a one-line ValueError: what is wrong, and the fix."""
    images = tf.convert_to_tensor(images)
    shape, (height, width, channels) = tuple(images.shape), generator.input_shape[1:]
    if len(shape) == 3:
        problem = f"one image of shape {shape}, not a batch: pass image[None]"
    elif len(shape) != 4:
        problem = (f"an array of shape {shape}, not a batch of images "
                   "(batch, height, width, channels)")
    elif shape[0] == 0:
        problem = f"an empty batch, of shape {shape}: give at least one image"
    elif shape[3] != channels:
        problem = (f"images of shape {shape}, channels first: pass tf.transpose("
                   "images, [0, 2, 3, 1])" if shape[1] == channels else
                   f"images of shape {shape}; this generator takes {channels} channels")
    elif height not in (None, shape[1]) or width not in (None, shape[2]):
        problem = (f"images of {shape[1]}x{shape[2]}; this generator takes "
                   f"{height}x{width}: resize them (`python -m p2p translate` "
                   "takes any size)")
    elif not images.dtype.is_floating:
        problem = (f"{images.dtype.name} values; it takes floats in [-1, 1]: pass "
                   "p2p.data.normalize(images), which maps 0..255 to them")
    elif not tf.reduce_all(tf.math.is_finite(images)):
        problem = "NaN or infinite values; give images in [-1, 1]"
    else:
        low, high = float(tf.reduce_min(images)), float(tf.reduce_max(images))
        if low >= -1 and high <= 1:
            return tf.cast(images, tf.float32)
        fix = ("pass p2p.data.normalize(images) if they are 0..255" if high > 2
               else "clip them, tf.clip_by_value(images, -1, 1)")
        problem = f"values from {low:g} to {high:g}, not in [-1, 1]: {fix}"
    raise ValueError(f"translate: {problem}")


@contextlib.contextmanager
def moving_statistics_kept(model: keras.Model):
    """Keep BatchNorm's moving averages in the block, which training-mode calls move."""
    moving = [v for layer in model.layers
              if isinstance(layer, keras.layers.BatchNormalization)
              for v in (layer.moving_mean, layer.moving_variance)]
    saved = [tf.identity(v) for v in moving]
    try:
        yield
    finally:
        for variable, value in zip(moving, saved):
            variable.assign(value)


def _one_by_one(generator: keras.Model, dropout: bool):
    """A tf.function mapping the generator over a batch, an image per call, in order."""
    # A partial, not a closure: TensorFlow counts retracing per code object, and would
    # warn when several generators trace once.
    return tf.function(functools.partial(_translate_each, generator, dropout),
                       reduce_retracing=True)


def _translate_each(generator: keras.Model, dropout: bool, images):
    # Dropout's rate is read when the graph is traced: a translator built with
    # dropout=False has none.
    with contextlib.nullcontext() if dropout else _dropout_off(generator):
        return tf.map_fn(
            lambda image: tf.cast(generator(image[None], training=True)[0], tf.float32),
            images,
            fn_output_signature=tf.float32,
            parallel_iterations=1,  # in turn: each draws its own dropout masks
        )


@contextlib.contextmanager
def _dropout_off(generator: keras.Model):
    """Dropout off (rate 0) for the duration; BatchNorm still uses batch statistics."""
    dropouts = [layer for layer in generator.layers
                if isinstance(layer, keras.layers.Dropout)]
    rates = [layer.rate for layer in dropouts]
    try:
        for layer in dropouts:
            layer.rate = 0.0
        yield
    finally:
        for layer, rate in zip(dropouts, rates):
            layer.rate = rate
