"""The optimizer: Adam with the paper's settings, updated by TensorFlow's fused kernel.

Also the one place where p2p reads Keras internals (Adam's moment slots): `adam_moments`, with
tests/test_optimizers.py failing loudly on a Keras that changed them. Explained in the chapters
"The training loop" (the settings) and "Scaling up" (the fused kernel).
"""

from __future__ import annotations

import keras
import tensorflow as tf

PAPER_ADAM = {"learning_rate": 2e-4, "beta_1": 0.5, "beta_2": 0.999}  # the paper's optimizer settings


def paper_optimizer(steps: int | None = None, lr_decay: float = 0.0) -> keras.optimizers.Optimizer:
    """Adam with the paper's settings: learning rate 2e-4, beta1 0.5, beta2 0.999 (fused: see FusedAdam).

    With `lr_decay` > 0 the learning rate is constant, then falls linearly to zero over the last
    `lr_decay` of `steps` (see LinearDecay; chapter "The training loop").
    """
    if not lr_decay:
        return FusedAdam(**PAPER_ADAM)
    if steps is None:
        raise ValueError("a learning-rate decay needs the run's number of steps")
    decay_steps = max(int(round(steps * lr_decay)), 1)
    schedule = LinearDecay(PAPER_ADAM["learning_rate"], steps - decay_steps, decay_steps)
    return FusedAdam(**{**PAPER_ADAM, "learning_rate": schedule})


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


def keras_adam() -> keras.optimizers.Optimizer:
    """Keras' own Adam with the paper's settings, as the TensorFlow tutorial uses it (chapter "Scaling up")."""
    return keras.optimizers.Adam(**PAPER_ADAM)


def adam_moments(optimizer: keras.optimizers.Adam, variable) -> tuple[keras.Variable, keras.Variable]:
    """Adam's first and second moment slots for `variable`, read from Keras' private attributes (chapter "Scaling up").

    Keras 3 keeps them in `_momentums` and `_velocities`, indexed by `_get_variable_index`; no
    public API exposes them. Keras is pinned (pyproject.toml) to the versions on which
    tests/test_optimizers.py checked this.
    """
    try:
        index = optimizer._get_variable_index(variable)
        return optimizer._momentums[index], optimizer._velocities[index]
    except (AttributeError, KeyError, IndexError) as err:
        raise RuntimeError(
            f"Keras {keras.__version__} keeps Adam's moments differently from the Keras versions p2p was tested "
            f"with (see the keras pin in pyproject.toml), so FusedAdam cannot update them ({err!r}). Install a "
            f"Keras in that range, or use keras.optimizers.Adam via Pix2Pix.compile(gen_optimizer=..., disc_optimizer=...)."
        ) from err


class FusedAdam(keras.optimizers.Adam):
    """keras.optimizers.Adam whose update is TensorFlow's one fused kernel per variable (chapter "Scaling up").

    Keras writes the Adam update as a dozen element-wise operations, each a pass over every
    weight and moment; with 57 M weights that is a fifth of a paper-sized train step on a CPU.
    ResourceApplyAdam computes the same formula in one pass:
    m += (g - m)(1 - b1), v += (g^2 - v)(1 - b2), w -= lr sqrt(1 - b2^t) / (1 - b1^t) m / (sqrt(v) + eps).
    """

    def update_step(self, gradient, variable, learning_rate):
        if self.amsgrad:
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        momentum, velocity = adam_moments(self, variable)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle, m=momentum.handle, v=velocity.handle,
            beta1_power=tf.pow(tf.cast(self.beta_1, dtype), step),
            beta2_power=tf.pow(tf.cast(self.beta_2, dtype), step),
            lr=tf.cast(learning_rate, dtype), beta1=tf.cast(self.beta_1, dtype),
            beta2=tf.cast(self.beta_2, dtype), epsilon=tf.cast(self.epsilon, dtype),
            grad=tf.cast(gradient, dtype),
        )
