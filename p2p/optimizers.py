"""The optimizer: Keras' Adam with the paper's settings, and the official PyTorch code's learning-rate decay.

Explained in the chapter "The training loop".
"""

from __future__ import annotations

import keras
import tensorflow as tf

PAPER_ADAM = {"learning_rate": 2e-4, "beta_1": 0.5, "beta_2": 0.999}  # the paper's optimizer settings


def paper_optimizer(steps: int | None = None, lr_decay: float = 0.0, learning_rate: float = PAPER_ADAM["learning_rate"]
                    ) -> keras.optimizers.Optimizer:
    """Keras' Adam with the paper's settings: learning rate 2e-4 (unless given), beta1 0.5, beta2 0.999.

    With `lr_decay` > 0 the learning rate is constant, then falls linearly to zero over the last
    `lr_decay` of `steps` (see LinearDecay; chapter "The training loop").
    """
    if not lr_decay:
        return keras.optimizers.Adam(**{**PAPER_ADAM, "learning_rate": learning_rate})
    if steps is None:
        raise ValueError("a learning-rate decay needs the run's number of steps")
    decay_steps = max(int(round(steps * lr_decay)), 1)
    schedule = LinearDecay(learning_rate, steps - decay_steps, decay_steps)
    return keras.optimizers.Adam(**{**PAPER_ADAM, "learning_rate": schedule})


@keras.saving.register_keras_serializable(package="p2p")
class LinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """The official PyTorch code's schedule: constant for `constant_steps`, then linearly to zero over `decay_steps`.

    PyTorch steps it once per epoch (100 epochs constant, then 100 decaying, by default); this
    one steps at every train step. Explained in the chapter "The training loop".
    """

    def __init__(self, initial_learning_rate: float, constant_steps: int, decay_steps: int):
        self.initial_learning_rate = initial_learning_rate
        self.constant_steps, self.decay_steps = constant_steps, decay_steps

    def __call__(self, step):
        done = (tf.cast(step, tf.float32) - self.constant_steps) / self.decay_steps
        return self.initial_learning_rate * (1.0 - tf.clip_by_value(done, 0.0, 1.0))

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "constant_steps": self.constant_steps,
                "decay_steps": self.decay_steps}
