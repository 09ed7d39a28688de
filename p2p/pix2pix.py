"""`Pix2Pix`: a keras.Model whose `train_step` is the paper's algorithm, run by `fit`.

One step on D, then one on G against the updated D. Explained in the chapter
"The train step".
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from p2p import inference, losses
from p2p.optimizers import paper_optimizer
from p2p.runtime.devices import loss_scaling, minimize

METRICS = ("gen_total", "gen_gan", "gen_l1", "disc")


class Pix2Pix(keras.Model):
    """G translates x; D judges (x, y) pairs; `fit` trains both.

    The order of the two steps is the official PyTorch code's: D's step, then G's step
    against the updated D, which judges the outputs again. `l1_weight` is the paper's
    lambda.
    """

    def __init__(self, generator, discriminator, l1_weight=100.0, **kwargs):
        super().__init__(**kwargs)
        self.generator = generator
        self.discriminator = discriminator
        self.l1_weight = float(l1_weight)
        if not 0 <= self.l1_weight < math.inf:  # a negative weight rewards errors
            raise ValueError(f"l1_weight must be a finite number, 0 or more, "
                             f"not {l1_weight}")
        self.trackers = [keras.metrics.Mean(name=name) for name in METRICS]
        self.check_discriminator()

    def compile(self, gen_optimizer=None, disc_optimizer=None, **kwargs):
        """Set both optimizers, the paper's Adam by default; the rest goes to Keras."""
        super().compile(**kwargs)
        self.gen_optimizer = loss_scaling(gen_optimizer or paper_optimizer(),
                                          self.generator)
        self.disc_optimizer = loss_scaling(disc_optimizer or paper_optimizer(),
                                           self.discriminator)
        # built now: a checkpoint can be restored into them before the first step
        self.gen_optimizer.build(self.generator.trainable_variables)
        self.disc_optimizer.build(self.discriminator.trainable_variables)

    @property
    def metrics(self):
        return self.trackers

    def call(self, inputs, training=False):
        return self.generator(inputs, training=training)

    def translate(self, inputs, *, dropout=True):
        """Test outputs as the paper makes them (`p2p.inference.translate`)."""
        return inference.translate(self.generator, inputs, dropout=dropout)

    def train_step(self, data):
        """One step of the paper's algorithm: D's step, then G's."""
        inputs, targets = data  # label maps, photos: (batch, size, size, 3) in [-1, 1]

        with tf.GradientTape() as gen_tape:
            outputs = self.generator(inputs, training=True)  # (batch, size, size, 3)

            # Train the discriminator (its step is no part of G's gradient)
            with gen_tape.stop_recording():
                disc_loss = self.train_discriminator(inputs, targets, outputs)

            # Train the generator: fool the updated D, and stay near the target in L1
            fake_logits = self.discriminate(inputs, outputs)  # (batch, n, n, 1)
            gen_total, gen_gan, gen_l1 = self.generator_loss(
                targets, outputs, fake_logits)
        minimize(self.gen_optimizer, gen_tape, gen_total, self.generator)

        return self.record(gen_total=gen_total, gen_gan=gen_gan, gen_l1=gen_l1,
                           disc=disc_loss)

    def train_discriminator(self, inputs, targets, outputs):
        """D's step: real pairs toward "real", fakes toward "fake"; returns its loss."""
        with tf.GradientTape() as tape:
            real_logits = self.discriminate(inputs, targets)  # (batch, n, n, 1)
            fake_logits = self.discriminate(inputs, tf.stop_gradient(outputs))
            loss = losses.discriminator_loss(real_logits, fake_logits)  # halved (paper)
        minimize(self.disc_optimizer, tape, loss, self.discriminator)
        return loss

    def generator_loss(self, targets, outputs, fake_logits):
        """G's loss on D's verdict: (GAN term + lambda * L1, GAN term, L1)."""
        gen_gan = losses.generator_gan_loss(fake_logits)
        gen_l1 = losses.l1_loss(targets, outputs)
        return gen_gan + self.l1_weight * gen_l1, gen_gan, gen_l1

    def discriminate(self, inputs, outputs, training=True):
        """D's patch logits for (input, output) pairs: (batch, n, n, 1)."""
        pairs = tf.concat([inputs, tf.cast(outputs, inputs.dtype)], axis=-1)
        return self.discriminator(pairs, training=training)

    def record(self, **losses_now):
        """Add one step's losses to the running means; the means, as `fit` logs them."""
        for tracker in self.trackers:
            tracker.update_state(losses_now[tracker.name])
        return {tracker.name: tracker.result() for tracker in self.trackers}

    def check_discriminator(self):
        """Refuse a D that does not take G's (input, output) pairs, naming the fix."""
        size, taken = self.generator.output_shape[1:3], self.discriminator.input_shape
        if taken[1:3] != size:
            raise ValueError(
                f"the discriminator takes {taken[1]}x{taken[2]} pairs but the "
                f"generator's are {size[0]}x{size[1]}: build it with "
                f"Discriminator({size[0]}, ...)"
            )
        pair = self.generator.input_shape[-1] + self.generator.output_shape[-1]
        if self.discriminator.input_shape[-1] != pair:
            raise ValueError(
                f"the discriminator takes {self.discriminator.input_shape[-1]} "
                f"channels but the (input, output) pair has {pair}: build it with "
                f"Discriminator(..., in_channels={pair})"
            )
