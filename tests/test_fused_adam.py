"""The optimizer: FusedAdam steps as Keras' Adam does, and the Keras internals it reads are where it expects them."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from p2p.optimizers import FusedAdam, LinearDecay, adam_moments, paper_optimizer


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


def test_the_linear_decay_holds_the_learning_rate_then_takes_it_to_zero_over_the_last_share_of_the_steps():
    optimizer = paper_optimizer(steps=10, lr_decay=0.5)  # the paper preset's shape: half constant, half decaying
    rates = [float(optimizer.learning_rate)]
    variable = keras.Variable(np.ones(3, np.float32))
    for _ in range(9):
        optimizer.apply([tf.ones(3)], [variable])
        rates.append(float(optimizer.learning_rate))
    assert rates[:6] == pytest.approx([2e-4] * 6)
    assert rates[5:] == pytest.approx([2e-4, 1.6e-4, 1.2e-4, 0.8e-4, 0.4e-4])  # one fifth less at each step
    assert float(LinearDecay(2e-4, 5, 5)(10)) == 0.0
    assert float(paper_optimizer(steps=10).learning_rate) == pytest.approx(2e-4)  # no decay: constant, as in Lua
    with pytest.raises(ValueError, match="number of steps"):
        paper_optimizer(lr_decay=0.5)
