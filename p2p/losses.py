"""The pix2pix objective: G* = arg min_G max_D L_cGAN(G, D) + lambda * L_L1(G).

Explained in the chapter "The conditional GAN objective".
"""

import keras
from keras import ops

_bce = keras.losses.BinaryCrossentropy(from_logits=True, reduction="none")


def _mean_bce(label: float, logits):
    """Mean binary cross-entropy of the patch logits against a label: 1 real, 0 fake."""
    return ops.mean(_bce(ops.full_like(logits, label), logits))


def discriminator_loss(real_logits, fake_logits):
    """D's loss, halved: (BCE(real, 1) + BCE(fake, 0)) / 2; 0.69 = log 2 is chance."""
    return 0.5 * (_mean_bce(1.0, real_logits) + _mean_bce(0.0, fake_logits))


def generator_gan_loss(fake_logits):
    """G's non-saturating GAN loss: maximise log D(x, G(x)), i.e. BCE(fake, 1)."""
    return _mean_bce(1.0, fake_logits)


def l1_loss(target, output):
    """Mean absolute error between the target and G's output, in [-1, 1] units."""
    return ops.mean(ops.abs(ops.cast(target, "float32") - ops.cast(output, "float32")))
