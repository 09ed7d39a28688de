"""Test time as the paper runs it: each test image through the generator on its own."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from p2p import data
from p2p.inference import translate
from p2p.models import Generator


@pytest.fixture(scope="module")
def generator():
    keras.utils.set_random_seed(0)
    return Generator(32, 8)


@pytest.fixture(scope="module")
def images():
    return tf.random.stateless_uniform((5, 32, 32, 3), seed=[1, 2], minval=-1, maxval=1)


def test_a_batch_is_translated_as_its_images_one_by_one(generator, images):
    together = translate(generator, images, dropout=False)
    alone = tf.concat([translate(generator, images[i:i + 1], dropout=False) for i in range(len(images))], axis=0)
    # Exact, not merely close: translate runs each image as its own (1, 32, 32, 3) call either way, so the same ops
    # on the same inputs and shapes, in this process, with dropout off; pooled statistics would differ by > 0.05 (below).
    np.testing.assert_array_equal(together.numpy(), alone.numpy())


def test_pooling_batchnorm_statistics_across_images_would_fail_that_test(generator, images):
    alone = translate(generator, images, dropout=False)
    pooled = generator(images, training=True)  # the mistake: one BatchNorm batch of five test images
    assert float(tf.reduce_max(tf.abs(pooled - alone))) > 0.05
    # an image's output then depends on which other images share its batch
    swapped = generator(tf.concat([images[:1], images[3:]], axis=0), training=True)
    assert float(tf.reduce_max(tf.abs(swapped[0] - pooled[0]))) > 0.05


def test_dropout_stays_on_and_each_image_draws_its_own_masks(generator, images):
    twice = tf.concat([images[:1], images[:1]], axis=0)
    outputs = translate(generator, twice)
    assert float(tf.reduce_max(tf.abs(outputs[0] - outputs[1]))) > 1e-3
    quiet = translate(generator, twice, dropout=False)
    np.testing.assert_array_equal(quiet[0].numpy(), quiet[1].numpy())  # exact: the same one-image call, twice
    assert all(layer.rate == 0.5 for layer in generator.layers if isinstance(layer, keras.layers.Dropout))


def test_batchnorm_moving_statistics_are_left_alone(generator, images):
    norms = [layer for layer in generator.layers if isinstance(layer, keras.layers.BatchNormalization)]
    before = [layer.moving_mean.numpy().copy() for layer in norms]
    translate(generator, images)
    for layer, saved in zip(norms, before):
        np.testing.assert_array_equal(layer.moving_mean.numpy(), saved)  # exact: restored copies, or a bug


def test_one_image_without_a_batch_axis_is_refused(generator, images):
    with pytest.raises(ValueError, match=r"image\[None\]"):
        translate(generator, images[0])


# What translate is given: checked, one line each (issue 28) ----------------------------------------------------------


@pytest.mark.parametrize("make, said", [
    # Before: a plausible picture computed from values far outside the generator's [-1, 1]
    (lambda images: np.asarray(data.to_uint8(images)), r"uint8 values.*p2p\.data\.normalize"),
    (lambda images: (images.numpy() + 1) * 127.5, r"values from \S+ to 2\d\d\S*, not in \[-1, 1\].*p2p\.data\.normalize"),
    (lambda images: images.numpy() * 1.2, r"values from -1\.\d+ to 1\.\d+, not in \[-1, 1\].*clip"),
    # Before: TensorFlow's errors from inside the graph, or an empty result
    (lambda images: images[:0], r"an empty batch"),
    (lambda images: tf.tensor_scatter_nd_update(images, [[0, 3, 4, 1]], [np.nan]), r"NaN or infinite"),
    (lambda images: tf.image.resize(images, (40, 48)), r"40x48.*takes 32x32.*python -m p2p translate"),
    (lambda images: images[..., :1], r"\(5, 32, 32, 1\); this generator takes 3 channels"),
    (lambda images: tf.transpose(images, [0, 3, 1, 2]), r"channels first.*tf\.transpose\(images, \[0, 2, 3, 1\]\)"),
    (lambda images: images[None], r"shape \(1, 5, 32, 32, 3\).*\(batch, height, width, channels\)"),
])
def test_what_the_generator_cannot_take_is_refused_in_one_line_naming_the_fix(generator, images, make, said):
    with pytest.raises(ValueError, match=said) as error:
        translate(generator, make(images))
    assert "\n" not in str(error.value) and str(error.value).startswith("translate: ")


def test_images_in_range_of_any_float_type_are_taken(generator, images):
    np.testing.assert_array_equal(translate(generator, np.asarray(images, np.float64), dropout=False).numpy(),
                                  translate(generator, images, dropout=False).numpy())
    translate(generator, tf.clip_by_value(images * 10, -1.0, 1.0))  # the ends themselves are in range
