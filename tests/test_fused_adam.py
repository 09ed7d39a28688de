"""FusedAdam, a lever of the benchmark: it steps as Keras' Adam does, and the Keras internals it reads are where it expects."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from p2p.lab.fused_adam import FusedAdam, adam_moments
from p2p.optimizers import PAPER_ADAM, LinearDecay


def test_fused_adam_takes_the_same_steps_as_keras_adam():
    settings = {"learning_rate": 1e-2, "beta_1": 0.5, "beta_2": 0.999}
    start = np.random.default_rng(0).normal(size=(64, 3)).astype("float32")
    weights = {}
    for name, optimizer in (("keras", keras.optimizers.Adam(**settings)), ("fused", FusedAdam(**settings))):
        variable = keras.Variable(start)
        for step in range(5):
            gradient = tf.constant(np.random.default_rng(step).normal(size=(64, 3)).astype("float32"))
            optimizer.apply([gradient], [variable])
        weights[name] = variable.numpy()
    assert np.abs(weights["keras"] - start).max() > 0.04  # the steps moved the weights
    # The same formula, rounded in other places (one kernel against a dozen float32 operations, on any CPU's vector
    # instructions): a few float32 ulps per step. rtol 1e-5 is about 80 ulps of a weight near 1; atol 1e-6 covers the
    # weights that pass near 0, where an ulp is tiny but the steps' rounding (of size ~1e-2 x 1e-7) is not
    np.testing.assert_allclose(weights["fused"], weights["keras"], rtol=1e-5, atol=1e-6)


def test_fused_adam_follows_the_paper_optimizers_learning_rate_decay():
    # FusedAdam takes the learning rate Keras hands it each step, so the official code's decay applies to it too
    start = np.random.default_rng(1).normal(size=(16,)).astype("float32")
    gradient = tf.constant(np.random.default_rng(2).normal(size=(16,)).astype("float32"))  # one direction: steps add up
    weights = []
    for kind in (keras.optimizers.Adam, FusedAdam):
        optimizer = kind(**{**PAPER_ADAM, "learning_rate": LinearDecay(2e-4, 3, 3)})
        variable = keras.Variable(start)
        for _ in range(6):  # at 2e-4 for 4 steps, then 2/3 and 1/3 of it: about 1e-3 in all
            optimizer.apply([gradient], [variable])
        weights.append(variable.numpy())
    assert np.abs(weights[0] - start).min() > 9e-4  # every weight moved by the decayed steps (1.2e-3 without the decay)
    # as above, float32 rounding in other places: the weights are ~1 (rtol 1e-5, ~80 ulps); the steps are ~2e-4, so
    # atol 1e-7 is a two-thousandth of one, far below the 2e-4 that ignoring the decay would add
    np.testing.assert_allclose(weights[1], weights[0], rtol=1e-5, atol=1e-7)


def test_adam_moments_finds_the_slots_keras_adam_updates():
    # Fails loudly on a Keras that moved Adam's moments: FusedAdam would then update the wrong tensors.
    settings = {"learning_rate": 1e-2, "beta_1": 0.5, "beta_2": 0.9}
    optimizer = keras.optimizers.Adam(**settings)
    variables = [keras.Variable(np.zeros((3, 2), "float32")), keras.Variable(np.zeros((4,), "float32"))]
    gradients = [tf.fill((3, 2), 2.0), tf.fill((4,), -1.0)]
    optimizer.apply(gradients, variables)
    for variable, gradient in zip(variables, gradients):
        momentum, velocity = adam_moments(optimizer, variable)
        # (1 - beta_1) g from zero: (g - 0) x 0.5 with g = 2 or -1 is exact in binary, on any CPU
        np.testing.assert_array_equal(momentum.numpy(), 0.5 * gradient.numpy())
        # (1 - beta_2) g^2: 1 - 0.9 is not exact in float32 (0.10000002), 2.4e-7 off 0.1: rtol 1e-6 allows that and an ulp
        np.testing.assert_allclose(velocity.numpy(), 0.1 * gradient.numpy() ** 2, rtol=1e-6)


def test_adam_moments_says_what_to_use_when_the_internals_are_missing():
    with pytest.raises(RuntimeError, match=r"cannot update them.*Use keras\.optimizers\.Adam, p2p's default"):
        adam_moments(keras.optimizers.SGD(), keras.Variable(np.zeros(2, "float32")))
