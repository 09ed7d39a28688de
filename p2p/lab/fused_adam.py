"""Adam updated by TensorFlow's fused kernel: a measured option of the benchmark, not p2p's default.

The one place where p2p reads Keras internals (Adam's moment slots): `adam_moments`, with
tests/test_fused_adam.py failing loudly on a Keras that changed them. Explained in the appendix
"Scaling up".
"""

from __future__ import annotations

import keras
import tensorflow as tf


def adam_moments(optimizer: keras.optimizers.Adam, variable) -> tuple[keras.Variable, keras.Variable]:
    """Adam's first and second moment slots for `variable`, read from Keras' private attributes (appendix "Scaling up").

    Keras 3 keeps them in `_momentums` and `_velocities`, indexed by `_get_variable_index`; no
    public API exposes them; tests/test_fused_adam.py checks this on the Keras installed.
    """
    try:
        index = optimizer._get_variable_index(variable)
        return optimizer._momentums[index], optimizer._velocities[index]
    except (AttributeError, KeyError, IndexError) as err:
        raise RuntimeError(
            f"Keras {keras.__version__} keeps Adam's moments differently from the Keras versions FusedAdam was "
            f"written for, so it cannot update them ({err!r}). Use keras.optimizers.Adam, p2p's default."
        ) from err


class FusedAdam(keras.optimizers.Adam):
    """keras.optimizers.Adam whose update is TensorFlow's one fused kernel per variable (appendix "Scaling up").

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
