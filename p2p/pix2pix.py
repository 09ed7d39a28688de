"""`Pix2Pix`: a keras.Model whose train_step does one D step then one G step, driven by `fit`.

Explained in the chapter "The training loop".
"""

from __future__ import annotations

import keras
import tensorflow as tf

from p2p import inference, losses

METRICS = ("gen_total", "gen_gan", "gen_l1", "disc")
PAPER_ADAM = {"learning_rate": 2e-4, "beta_1": 0.5, "beta_2": 0.999}  # the paper's optimizer settings


def paper_optimizer() -> keras.optimizers.Optimizer:
    """Adam with the paper's settings: learning rate 2e-4, beta1 0.5, beta2 0.999 (fused: see FusedAdam)."""
    return FusedAdam(**PAPER_ADAM)


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
        index = self._get_variable_index(variable)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle, m=self._momentums[index].handle, v=self._velocities[index].handle,
            beta1_power=tf.pow(tf.cast(self.beta_1, dtype), step),
            beta2_power=tf.pow(tf.cast(self.beta_2, dtype), step),
            lr=tf.cast(learning_rate, dtype), beta1=tf.cast(self.beta_1, dtype),
            beta2=tf.cast(self.beta_2, dtype), epsilon=tf.cast(self.epsilon, dtype),
            grad=tf.cast(gradient, dtype),
        )


class Pix2Pix(keras.Model):
    """A conditional GAN for image-to-image translation (chapter "The training loop").

    `gan_weight=0` is the paper's L1-only ablation (D is then neither run nor trained),
    `l1_weight=0` the GAN-only one, and `conditional=False` the unconditional GAN whose
    discriminator sees the output alone (build it with `Discriminator(in_channels=3)`).
    """

    def __init__(self, generator, discriminator, l1_weight=100.0, gan_weight=1.0, conditional=True, **kwargs):
        super().__init__(**kwargs)
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
        disc = self.train_discriminator(inputs, targets, outputs) if self.gan_weight else tf.constant(0.0)
        gen_total, gen_gan, gen_l1 = self.train_generator(gen_tape, inputs, targets, outputs)
        return self._record(gen_total, gen_gan, gen_l1, disc)

    def train_discriminator(self, inputs, targets, outputs):
        """D's step: real pairs toward "real", generated pairs toward "fake", on the halved loss; returns the loss."""
        with tf.GradientTape() as tape:
            real = self.discriminate(inputs, targets, training=True)  # (batch, n, n, 1): a logit per patch
            fake = self.discriminate(inputs, tf.stop_gradient(outputs), training=True)  # D's step leaves G alone
            loss = losses.discriminator_loss(real, fake)
            scaled = self.disc_optimizer.scale_loss(loss / _replicas())
        variables = self.discriminator.trainable_variables
        self.disc_optimizer.apply(tape.gradient(scaled, variables), variables)
        return loss

    def train_generator(self, tape, inputs, targets, outputs):
        """G's step: fool the just-updated D and stay near the target in L1; `tape` holds G's forward pass."""
        with tape:  # recording again: D's verdict on the outputs must reach G's weights through them
            gen_l1 = losses.l1_loss(targets, outputs)
            if self.gan_weight:
                gen_gan = losses.generator_gan_loss(self.discriminate(inputs, outputs, training=True))
            else:
                gen_gan = tf.constant(0.0)
            gen_total = self.gan_weight * gen_gan + self.l1_weight * gen_l1
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
