"""The paper's Adam and the official PyTorch code's decay (chapter "The train step")."""

from __future__ import annotations

import keras
import tensorflow as tf

PAPER_ADAM = {"learning_rate": 2e-4, "beta_1": 0.5, "beta_2": 0.999}


def paper_optimizer(steps: int | None = None, lr_decay: float = 0.0,
                    learning_rate: float = PAPER_ADAM["learning_rate"]
                    ) -> keras.optimizers.Optimizer:
    """The paper's Adam, its rate falling to 0 over the last `lr_decay` of `steps`."""
    if lr_decay:
        if steps is None:
            raise ValueError("a learning-rate decay needs the run's number of steps")
        decay_steps = max(int(round(steps * lr_decay)), 1)
        learning_rate = LinearDecay(learning_rate, steps - decay_steps, decay_steps)
    return keras.optimizers.Adam(**{**PAPER_ADAM, "learning_rate": learning_rate})


@keras.saving.register_keras_serializable(package="p2p")
class LinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """The official PyTorch code's linear decay after `constant_steps`, per step."""

    def __init__(self, initial_learning_rate: float, constant_steps: int,
                 decay_steps: int):
        self.initial_learning_rate = initial_learning_rate
        self.constant_steps, self.decay_steps = constant_steps, decay_steps

    def __call__(self, step):
        done = (tf.cast(step, tf.float32) - self.constant_steps) / self.decay_steps
        return self.initial_learning_rate * (1.0 - tf.clip_by_value(done, 0.0, 1.0))

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "constant_steps": self.constant_steps,
                "decay_steps": self.decay_steps}
