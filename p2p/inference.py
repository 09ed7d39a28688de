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
    inputs = tf.convert_to_tensor(inputs, tf.float32)
    if inputs.shape.rank == 3:
        raise ValueError(f"translate takes a batch of images (batch, height, width, "
                         f"channels), not one image of shape {tuple(inputs.shape)}: "
                         "pass image[None]")
    translators = _TRANSLATORS.setdefault(generator, {})
    if dropout not in translators:  # dropout=False: a deterministic translator
        translators[dropout] = _one_by_one(generator, dropout)
    # BatchNorm's moving averages, which pix2pix never uses, stay as they were
    with moving_statistics_kept(generator):
        return translators[dropout](inputs)


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
