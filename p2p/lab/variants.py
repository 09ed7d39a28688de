"""The variants of the paper's training that the book measures, beside `p2p.Pix2Pix` and checked against it.

`Pix2PixVariant` trains what a `Config`'s variant settings ask for: the L1-only and GAN ablations
(`gan_weight=0`, `conditional=False`), the TensorFlow tutorial's simultaneous update
(`gan_update="simultaneous"`; Lua's is between the two: G's loss from D's verdict before its update,
its gradient through the updated D), an L2 reconstruction term, a scaled learning rate for D. With the
paper's settings it takes the same steps as `p2p.Pix2Pix` (tests/test_variants.py). Explained in
the chapters "Reproducing the paper" and "Troubleshooting training".
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from p2p import losses, training
from p2p.config import Config
from p2p.optimizers import PAPER_ADAM, paper_optimizer
from p2p.pix2pix import METRICS, Pix2Pix, apply_gradients
from p2p.runtime import devices


def l2_loss(target, output):
    """Mean squared error of output and target in [-1, 1] units; the mean minimises it (chapter "Troubleshooting training")."""
    return ops.mean(ops.square(ops.cast(target, "float32") - ops.cast(output, "float32")))


class Pix2PixVariant(Pix2Pix):
    """Pix2Pix with the switches of the ablations and the implementations' choices (see the module's docstring)."""

    def __init__(self, generator, discriminator, l1_weight=100.0, *, gan_weight=1.0, conditional=True,
                 gan_update="sequential", reconstruction="l1", **kwargs):
        if conditional:
            super().__init__(generator, discriminator, l1_weight, **kwargs)
        else:  # D sees the output alone, so Pix2Pix's check of the pair's channels does not apply
            keras.Model.__init__(self, **kwargs)
            self.generator, self.discriminator, self.l1_weight = generator, discriminator, float(l1_weight)
            self.trackers = [keras.metrics.Mean(name=name) for name in METRICS]
        self.gan_weight = float(gan_weight)
        self.conditional = conditional
        self.gan_update = gan_update
        self.reconstruction = reconstruction

    def discriminate(self, inputs, outputs, training=True):
        """D's patch logits for (input, output) pairs, or for the outputs alone when unconditional."""
        if self.conditional:
            return super().discriminate(inputs, outputs, training)
        return self.discriminator(outputs, training=training)

    def train_step(self, data):
        inputs, targets = data
        if not self.gan_weight:  # the L1-only ablation: D is neither run nor trained
            with tf.GradientTape() as gen_tape:
                outputs = self.generator(inputs, training=True)
                gen_l1 = losses.l1_loss(targets, outputs)
                gen_total = self.l1_weight * self._reconstruction(targets, outputs, gen_l1)
            apply_gradients(self.gen_optimizer, gen_tape, gen_total, self.generator)
            return self.record(gen_total=gen_total, gen_gan=tf.constant(0.0), gen_l1=gen_l1, disc=tf.constant(0.0))
        if self.gan_update == "sequential":
            with tf.GradientTape() as gen_tape:
                outputs = self.generator(inputs, training=True)
                with gen_tape.stop_recording():
                    disc_loss = self.train_discriminator(inputs, targets, outputs)
                fake_logits = self.discriminate(inputs, outputs)  # D after its update
                gen_total, gen_gan, gen_l1 = self._generator_losses(targets, outputs, fake_logits)
            apply_gradients(self.gen_optimizer, gen_tape, gen_total, self.generator)
        else:  # simultaneous: one D pass serves both losses, so G's gradient goes through D as it was before its step
            with tf.GradientTape() as gen_tape, tf.GradientTape() as disc_tape:
                outputs = self.generator(inputs, training=True)
                real_logits = self.discriminate(inputs, targets)
                fake_logits = self.discriminate(inputs, outputs)
                disc_loss = losses.discriminator_loss(real_logits, fake_logits)
                gen_total, gen_gan, gen_l1 = self._generator_losses(targets, outputs, fake_logits)
            apply_gradients(self.disc_optimizer, disc_tape, disc_loss, self.discriminator)
            apply_gradients(self.gen_optimizer, gen_tape, gen_total, self.generator)  # D's weights as read above, not updated
        return self.record(gen_total=gen_total, gen_gan=gen_gan, gen_l1=gen_l1, disc=disc_loss)

    def _generator_losses(self, targets, outputs, fake_logits):
        """G's total loss, its adversarial term and its L1 distance."""
        gen_gan = losses.generator_gan_loss(fake_logits)
        gen_l1 = losses.l1_loss(targets, outputs)
        return self.gan_weight * gen_gan + self.l1_weight * self._reconstruction(targets, outputs, gen_l1), gen_gan, gen_l1

    def _reconstruction(self, targets, outputs, gen_l1):
        """The term lambda weighs: the L1 distance, or the mean squared error."""
        return gen_l1 if self.reconstruction == "l1" else l2_loss(targets, outputs)


def build_model(config: Config, *, jit_compile: bool | str = "auto") -> Pix2Pix:
    """The model `config` asks for: `p2p.Pix2Pix` with the paper's settings, else a compiled `Pix2PixVariant`."""
    if not config.variant_settings():
        return training.build_model(config, jit_compile=jit_compile)
    generator, discriminator = training.build_networks(config, disc_channels=6 if config.conditional else 3)
    model = Pix2PixVariant(generator, discriminator, config.l1_weight, gan_weight=config.gan_weight,
                           conditional=config.conditional, gan_update=config.gan_update,
                           reconstruction=config.reconstruction)
    disc_rate = PAPER_ADAM["learning_rate"] * config.disc_lr_scale
    decay = config.lr_decay if config.steps else 0.0
    model.compile(gen_optimizer=paper_optimizer(config.steps, decay),
                  disc_optimizer=paper_optimizer(config.steps, decay, learning_rate=disc_rate),
                  jit_compile=devices.resolve_jit_compile(jit_compile))
    return model
