"""`Pix2Pix`: a keras.Model whose train_step is the paper's algorithm, one D step then one G step, driven by `fit`.

Explained in the chapter "The training loop".
"""

from __future__ import annotations

import keras
import tensorflow as tf

from p2p import inference, losses
from p2p.optimizers import paper_optimizer

METRICS = ("gen_total", "gen_gan", "gen_l1", "disc")


class Pix2Pix(keras.Model):
    """A conditional GAN for image-to-image translation: G translates x; D judges (x, y) pairs (chapter "The training loop").

    The order of the two steps is the official PyTorch code's: D's step, then G's step against
    the updated D, which judges the outputs again. `l1_weight` is the paper's lambda.
    """

    def __init__(self, generator, discriminator, l1_weight=100.0, **kwargs):
        super().__init__(**kwargs)
        pair_channels = generator.input_shape[-1] + generator.output_shape[-1]
        if discriminator.input_shape[-1] != pair_channels:
            raise ValueError(f"the discriminator takes {discriminator.input_shape[-1]} channels but the (input, output) "
                             f"pair has {pair_channels}: build it with Discriminator(..., in_channels={pair_channels})")
        self.generator = generator
        self.discriminator = discriminator
        self.l1_weight = float(l1_weight)
        self.trackers = [keras.metrics.Mean(name=name) for name in METRICS]

    def compile(self, gen_optimizer=None, disc_optimizer=None, **kwargs):
        """Set the two optimizers (the paper's Adam by default); other arguments go to keras.Model.compile.

        When the generator computes in float16 ("mixed_float16") both optimizers get dynamic loss scaling.
        """
        super().compile(**kwargs)
        self.gen_optimizer = gen_optimizer or paper_optimizer()
        self.disc_optimizer = disc_optimizer or paper_optimizer()
        if self.generator.dtype_policy.name == "mixed_float16":
            self.gen_optimizer = keras.optimizers.LossScaleOptimizer(self.gen_optimizer)
            self.disc_optimizer = keras.optimizers.LossScaleOptimizer(self.disc_optimizer)
        # built now, so that a checkpoint can be restored into them before the first step
        self.gen_optimizer.build(self.generator.trainable_variables)
        self.disc_optimizer.build(self.discriminator.trainable_variables)

    @property
    def metrics(self):
        return self.trackers

    def call(self, inputs, training=False):
        return self.generator(inputs, training=training)

    def translate(self, inputs, *, dropout=True):
        """Outputs for test inputs as the paper makes them: one image at a time, dropout on (see `p2p.inference.translate`)."""
        return inference.translate(self.generator, inputs, dropout=dropout)

    def discriminate(self, inputs, outputs, training=True):
        """D's patch logits for (input, output) pairs: (batch, n, n, 1)."""
        return self.discriminator(tf.concat([inputs, tf.cast(outputs, inputs.dtype)], axis=-1), training=training)

    def train_step(self, data):
        """One step of the paper's algorithm: a gradient step on D, then one on G (chapter "The training loop")."""
        inputs, targets = data  # label maps and photos: (batch, size, size, 3) each, in [-1, 1]

        with tf.GradientTape() as gen_tape:
            outputs = self.generator(inputs, training=True)  # G(x): (batch, size, size, 3)

            # Train the discriminator: real pairs toward "real", generated pairs toward "fake"
            with gen_tape.stop_recording():  # D's step is no part of G's gradient
                disc_loss = self.train_discriminator(inputs, targets, outputs)

            # Train the generator: fool the updated D, and stay near the target in L1
            fake_logits = self.discriminate(inputs, outputs)  # (batch, n, n, 1)
            gen_gan = losses.generator_gan_loss(fake_logits)
            gen_l1 = losses.l1_loss(targets, outputs)
            gen_total = gen_gan + self.l1_weight * gen_l1
        apply_gradients(self.gen_optimizer, gen_tape, gen_total, self.generator)

        return self.record(gen_total=gen_total, gen_gan=gen_gan, gen_l1=gen_l1, disc=disc_loss)

    def train_discriminator(self, inputs, targets, outputs):
        """D's step on the halved loss, (BCE(D(x, y), 1) + BCE(D(x, G(x)), 0)) / 2; returns the loss."""
        with tf.GradientTape() as tape:
            real_logits = self.discriminate(inputs, targets)  # (batch, n, n, 1): a logit per patch
            fake_logits = self.discriminate(inputs, tf.stop_gradient(outputs))
            loss = losses.discriminator_loss(real_logits, fake_logits)
        apply_gradients(self.disc_optimizer, tape, loss, self.discriminator)
        return loss

    def record(self, **losses_now):
        """Add one step's losses to the running means and return the means, as `fit` logs them."""
        for tracker in self.trackers:
            tracker.update_state(losses_now[tracker.name])
        return {tracker.name: tracker.result() for tracker in self.trackers}


def apply_gradients(optimizer, tape, loss, model) -> None:
    """One optimizer step on `model`'s weights down the gradient of `loss`, as `tape` recorded it.

    The gradient is taken of the loss times the optimizer's loss scale (1 but with mixed float16)
    and divided by the number of replicas (1 but under tf.distribute, which sums their gradients).
    """
    variables = model.trainable_variables
    scale = optimizer.scale_loss(tf.ones_like(loss)) / tf.distribute.get_strategy().num_replicas_in_sync
    optimizer.apply(tape.gradient(loss, variables, output_gradients=scale), variables)
