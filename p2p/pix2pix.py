"""`Pix2Pix`: a keras.Model whose train_step does one D step and one G step, driven by `fit`.

Explained in the chapter "The training loop".
"""

from __future__ import annotations

import contextlib

import keras
import tensorflow as tf

from p2p import inference, losses
from p2p.optimizers import paper_optimizer

METRICS = ("gen_total", "gen_gan", "gen_l1", "disc")
GAN_UPDATES = ("sequential", "simultaneous")
RECONSTRUCTIONS = ("l1", "l2")  # the term lambda weighs: the paper's L1, or the mean squared error


class Pix2Pix(keras.Model):
    """A conditional GAN for image-to-image translation (chapter "The training loop").

    `gan_weight=0` is the paper's L1-only ablation (D is then neither run nor trained),
    `l1_weight=0` the GAN-only one, and `conditional=False` the unconditional GAN whose
    discriminator sees the output alone (build it with `Discriminator(in_channels=3)`).
    `reconstruction="l2"` makes lambda (`l1_weight`) weigh the mean squared error instead of
    L1 (chapter "Troubleshooting"); the `gen_l1` metric is the L1 distance either way.

    `gan_update` is the order of the two steps. "sequential" (the default, as the official
    PyTorch code): D's step, then G's step against the updated D, which judges the outputs
    again. "simultaneous" (as the original Lua code and the TensorFlow tutorial): G's step uses
    D's verdict from before D's update, so D runs once less per step.
    """

    def __init__(self, generator, discriminator, l1_weight=100.0, gan_weight=1.0, conditional=True,
                 gan_update="sequential", reconstruction="l1", **kwargs):
        super().__init__(**kwargs)
        if gan_update not in GAN_UPDATES:
            raise ValueError(f"unknown gan_update {gan_update!r}; choose one of {', '.join(GAN_UPDATES)}")
        if reconstruction not in RECONSTRUCTIONS:
            raise ValueError(f"unknown reconstruction {reconstruction!r}; choose one of {', '.join(RECONSTRUCTIONS)}")
        in_channels, out_channels = generator.input_shape[-1], generator.output_shape[-1]
        expected = in_channels + out_channels if conditional else out_channels
        if discriminator.input_shape[-1] != expected:
            raise ValueError(
                f"the discriminator takes {discriminator.input_shape[-1]} channels but "
                f"{'the (input, output) pair' if conditional else 'the output alone'} has {expected}: "
                f"build it with Discriminator(..., in_channels={expected})"
            )
        self.generator = generator
        self.discriminator = discriminator
        self.l1_weight = float(l1_weight)
        self.gan_weight = float(gan_weight)
        self.conditional = conditional
        self.gan_update = gan_update
        self.reconstruction = reconstruction
        self.trackers = [keras.metrics.Mean(name=name) for name in METRICS]

    def compile(self, gen_optimizer=None, disc_optimizer=None, **kwargs):
        """Set the two optimizers (the paper's Adam by default); other arguments go to keras.Model.compile.

        When the generator computes in float16 ("mixed_float16") both optimizers get dynamic loss scaling.
        """
        super().compile(**kwargs)
        self.gen_optimizer = gen_optimizer or paper_optimizer()
        self.disc_optimizer = disc_optimizer or paper_optimizer()
        if self.generator.dtype_policy.name == "mixed_float16":
            self.gen_optimizer = _loss_scaled(self.gen_optimizer)
            self.disc_optimizer = _loss_scaled(self.disc_optimizer)
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

    def discriminate(self, inputs, outputs, training=False):
        """D's patch logits for (input, output) pairs, or for the outputs alone when unconditional."""
        pair = tf.concat([inputs, tf.cast(outputs, inputs.dtype)], axis=-1) if self.conditional else outputs
        return self.discriminator(pair, training=training)

    def train_step(self, data):
        """One step of the paper's algorithm: a gradient step on D, then one on G (chapter "The training loop")."""
        inputs, targets = data  # label maps and photos: (batch, size, size, 3) each, in [-1, 1]
        gen_tape = tf.GradientTape()
        with gen_tape:  # G's forward pass, recorded for G's step
            outputs = self.generator(inputs, training=True)  # (batch, size, size, 3)

        # Train the discriminator (not at all in the L1-only ablation)
        disc, fake = tf.constant(0.0), None  # fake: D's verdict on the outputs, when G's step reuses it
        if self.gan_weight and self.gan_update == "sequential":
            disc, _ = self.train_discriminator(inputs, targets, outputs)  # G's step asks the updated D again
        elif self.gan_weight:  # "simultaneous": G's step reuses D's verdict, recorded on G's tape too
            disc, fake = self.train_discriminator(inputs, targets, outputs, gen_tape=gen_tape)

        # Train the generator
        gen_total, gen_gan, gen_l1 = self.train_generator(gen_tape, inputs, targets, outputs, fake)
        return self._record(gen_total, gen_gan, gen_l1, disc)

    def train_discriminator(self, inputs, targets, outputs, gen_tape=None):
        """D's step: real pairs toward "real", generated pairs toward "fake", on the halved loss.

        Returns the loss and D's logits for the generated pairs. Without `gen_tape` those leave
        G alone; with it (the simultaneous update) G's tape records them as well.
        """
        with tf.GradientTape() as tape, gen_tape or contextlib.nullcontext():
            real = self.discriminate(inputs, targets, training=True)  # (batch, n, n, 1): a logit per patch
            fake = self.discriminate(inputs, outputs if gen_tape else tf.stop_gradient(outputs), training=True)
            loss = losses.discriminator_loss(real, fake)
            scaled = self.disc_optimizer.scale_loss(loss / _replicas())
        variables = self.discriminator.trainable_variables
        self.disc_optimizer.apply(tape.gradient(scaled, variables), variables)
        return loss, fake

    def train_generator(self, tape, inputs, targets, outputs, fake=None):
        """G's step: fool D and stay near the target in L1; `tape` holds G's forward pass.

        `fake` is D's verdict on the outputs when it was already recorded on `tape` (the
        simultaneous update); otherwise D judges them now.
        """
        with tape:  # recording again: D's verdict on the outputs must reach G's weights through them
            gen_l1 = losses.l1_loss(targets, outputs)
            if self.gan_weight and fake is None:
                fake = self.discriminate(inputs, outputs, training=True)
            gen_gan = losses.generator_gan_loss(fake) if self.gan_weight else tf.constant(0.0)
            reconstruction = gen_l1 if self.reconstruction == "l1" else losses.l2_loss(targets, outputs)
            gen_total = self.gan_weight * gen_gan + self.l1_weight * reconstruction
            scaled = self.gen_optimizer.scale_loss(gen_total / _replicas())
        variables = self.generator.trainable_variables
        self.gen_optimizer.apply(tape.gradient(scaled, variables), variables)
        return gen_total, gen_gan, gen_l1

    def _record(self, *values):
        """Add one step's losses to the running means and return the means, in METRICS order."""
        for tracker, value in zip(self.trackers, values):
            tracker.update_state(value)
        return {tracker.name: tracker.result() for tracker in self.trackers}


def _replicas() -> int:
    """How many replicas share a step: tf.distribute sums their gradients, so each loss is divided by it."""
    return tf.distribute.get_strategy().num_replicas_in_sync


def _loss_scaled(optimizer):
    """Wrap an optimizer in dynamic loss scaling, for float16 training."""
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return optimizer
    return keras.optimizers.LossScaleOptimizer(optimizer)
