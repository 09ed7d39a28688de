"""The optimizer: Keras' own Adam with the paper's settings, and the official PyTorch code's learning-rate decay."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from p2p.optimizers import PAPER_ADAM, LinearDecay, paper_optimizer


def test_the_paper_optimizer_is_keras_own_adam_with_the_papers_settings():
    optimizer = paper_optimizer()
    assert type(optimizer) is keras.optimizers.Adam  # not a subclass: no fused kernel, no Keras internals read
    assert PAPER_ADAM == {"learning_rate": 2e-4, "beta_1": 0.5, "beta_2": 0.999}
    # Keras keeps the learning rate in a float32 variable: 2e-4 comes back as its float32 rounding, exactly, so
    # compared in float32 the test is exact on any CPU; the betas are kept as the Python floats given
    assert np.float32(optimizer.learning_rate.numpy()) == np.float32(2e-4)
    assert (optimizer.beta_1, optimizer.beta_2) == (0.5, 0.999)
    assert optimizer.epsilon == 1e-7 and not optimizer.amsgrad  # Keras' defaults (PyTorch's epsilon is 1e-8)


def test_the_linear_decay_holds_the_learning_rate_then_takes_it_to_zero_over_the_last_share_of_the_steps():
    optimizer = paper_optimizer(steps=10, lr_decay=0.5)  # the paper preset's shape: half constant, half decaying
    assert type(optimizer) is keras.optimizers.Adam
    rates = [float(optimizer.learning_rate)]
    variable = keras.Variable(np.ones(3, np.float32))
    for _ in range(9):
        optimizer.apply([tf.ones(3)], [variable])
        rates.append(float(optimizer.learning_rate))
    # the rates are float32 products of 2e-4 and a fraction: pytest.approx's 1e-6 relative is a few float32 ulps
    assert rates[:6] == pytest.approx([2e-4] * 6)
    assert rates[5:] == pytest.approx([2e-4, 1.6e-4, 1.2e-4, 0.8e-4, 0.4e-4])  # one fifth less at each step
    assert float(LinearDecay(2e-4, 5, 5)(10)) == 0.0  # exact: 2e-4 x (1 - 1), the clipped share being exactly 1
    assert float(paper_optimizer(steps=10).learning_rate) == pytest.approx(2e-4)  # no decay: constant, as in Lua
    with pytest.raises(ValueError, match="number of steps"):
        paper_optimizer(lr_decay=0.5)
