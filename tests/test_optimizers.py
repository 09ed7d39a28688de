"""The optimizer: FusedAdam steps as Keras' Adam does, and the Keras internals it reads are where it expects them."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from p2p.optimizers import FusedAdam, adam_moments


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
    np.testing.assert_allclose(weights["fused"], weights["keras"], rtol=1e-5, atol=1e-6)  # float rounding


def test_adam_moments_finds_the_slots_keras_adam_updates():
    # Fails loudly on a Keras that moved Adam's moments: FusedAdam would then update the wrong tensors.
    settings = {"learning_rate": 1e-2, "beta_1": 0.5, "beta_2": 0.9}
    optimizer = keras.optimizers.Adam(**settings)
    variables = [keras.Variable(np.zeros((3, 2), "float32")), keras.Variable(np.zeros((4,), "float32"))]
    gradients = [tf.fill((3, 2), 2.0), tf.fill((4,), -1.0)]
    optimizer.apply(gradients, variables)
    for variable, gradient in zip(variables, gradients):
        momentum, velocity = adam_moments(optimizer, variable)
        np.testing.assert_allclose(momentum.numpy(), 0.5 * gradient.numpy())  # (1 - beta_1) g
        np.testing.assert_allclose(velocity.numpy(), 0.1 * gradient.numpy() ** 2, rtol=1e-6)  # (1 - beta_2) g^2


def test_adam_moments_names_the_keras_pin_when_the_internals_are_missing():
    with pytest.raises(RuntimeError, match="keras pin in pyproject.toml"):
        adam_moments(keras.optimizers.SGD(), keras.Variable(np.zeros(2, "float32")))
