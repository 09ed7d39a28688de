"""The variants of the paper's training that the book measures, each a small override of `p2p.Pix2Pix`.

`VariantConfig` is a `Config` with the variants' settings: the L1-only and GAN ablations
(`gan_weight=0`, `conditional=False`), the TensorFlow tutorial's simultaneous update
(`gan_update="simultaneous"`: G's loss from D's verdict before D's update; Lua's is between
the two, its verdict from before the update, its gradient through the updated D), an L2
reconstruction term and a scaled learning rate for D. `Pix2PixVariant` trains them by
overriding the named parts of `Pix2Pix.train_step` (`discriminate`, `train_discriminator`,
`generator_loss`), and only the simultaneous order replaces the step. With the paper's settings
it takes the same steps as `p2p.Pix2Pix` (tests/test_variants.py). Explained in the chapters
"Reproducing the paper" and "Troubleshooting training".
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf
from keras import ops

from p2p import config as configs
from p2p import losses, training
from p2p.config import Config, resolve
from p2p.optimizers import PAPER_ADAM, paper_optimizer
from p2p.pix2pix import Pix2Pix
from p2p.runtime import devices
from p2p.runtime.devices import minimize

#: Each variant setting's choices, or its range (a test, and how an error says it).
CHOICES = {"gan_update": ("sequential", "simultaneous"), "reconstruction": ("l1", "l2")}
RANGES = {"gan_weight": (lambda v: v >= 0, "0 or more"), "disc_lr_scale": (lambda v: v > 0, "more than 0")}


@dataclasses.dataclass(frozen=True)
class VariantConfig(Config):
    """A Config with the settings of the lab's variants; these defaults are the paper's."""

    gan_weight: float = 1.0  # 0: the L1-only ablation
    conditional: bool = True  # False: D sees the output alone (the "GAN" ablation)
    gan_update: str = "sequential"  # "simultaneous": G's loss from D before its update
    reconstruction: str = "l1"  # "l2": lambda weighs the mean squared error
    disc_lr_scale: float = 1.0  # multiplies D's learning rate

    def __post_init__(self):
        super().__post_init__()  # the types, and the paper's settings' choices and ranges
        for name, choices in CHOICES.items():
            if getattr(self, name) not in choices:
                raise ValueError(f"unknown {name} {getattr(self, name)!r}; choose one of {', '.join(choices)}")
        for name, (holds, what) in RANGES.items():
            if not holds(getattr(self, name)):
                raise ValueError(f"{name} must be {what}, not {getattr(self, name)!r}")

    def variant(self) -> dict:
        """The variant settings that differ from the paper's."""
        paper = VariantConfig()
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)
                if field.name not in Config.__dataclass_fields__ and getattr(self, field.name) != getattr(paper, field.name)}

    def to_dict(self) -> dict:
        """The paper's settings, and the variant's that differ under "variant", as config.json keeps them."""
        values = {name: value for name, value in dataclasses.asdict(self).items() if name in Config.__dataclass_fields__}
        return {**values, "variant": self.variant()} if self.variant() else values

    @classmethod
    def from_dict(cls, values: dict) -> VariantConfig:
        """A VariantConfig from `to_dict`'s values."""
        values = dict(values)
        variant = values.pop("variant", {})
        return cls(**{**Config.from_dict(values).to_dict(), **variant})


def configure(config: Config | str, **settings) -> VariantConfig:
    """A VariantConfig from a preset's name or a Config, with `settings` (the paper's and the variants') replaced."""
    config = resolve(config)
    return resolve(VariantConfig(**dataclasses.asdict(config)), **settings)


def read(run_dir) -> VariantConfig:
    """The VariantConfig of a run folder (a paper run's has the paper's variant settings)."""
    return configs.read(run_dir, VariantConfig)


def l2_loss(target, output):
    """Mean squared error of output and target in [-1, 1] units; the mean minimises it (chapter "Troubleshooting training")."""
    return ops.mean(ops.square(ops.cast(target, "float32") - ops.cast(output, "float32")))


class Pix2PixVariant(Pix2Pix):
    """Pix2Pix with the switches of the ablations and the implementations' choices (see the module's docstring)."""

    def __init__(self, generator, discriminator, l1_weight=100.0, *, gan_weight=1.0, conditional=True,
                 gan_update="sequential", reconstruction="l1", **kwargs):
        self.gan_weight = float(gan_weight)
        self.conditional = conditional  # before Pix2Pix's check of D's input, which reads it
        self.gan_update = gan_update
        self.reconstruction = reconstruction
        super().__init__(generator, discriminator, l1_weight, **kwargs)

    def check_discriminator(self):
        """D takes (input, output) pairs, or, unconditional, G's output alone."""
        if self.conditional:
            return super().check_discriminator()
        taken, output = self.discriminator.input_shape[1:], self.generator.output_shape[1:]
        if taken != output:
            raise ValueError(f"the unconditional discriminator takes {taken} but G's outputs are {output}: build it "
                             f"with Discriminator({output[0]}, ..., in_channels={output[-1]})")

    def discriminate(self, inputs, outputs, training=True):
        """D's patch logits: for (input, output) pairs, the output alone when unconditional; none for L1 alone."""
        if not self.gan_weight:  # the L1-only ablation: D is neither run nor trained
            return None
        if self.conditional:
            return super().discriminate(inputs, outputs, training)
        return self.discriminator(outputs, training=training)

    def train_discriminator(self, inputs, targets, outputs):
        """D's step, as Pix2Pix's; none for L1 alone (its loss logged as 0)."""
        if not self.gan_weight:
            return tf.constant(0.0)
        return super().train_discriminator(inputs, targets, outputs)

    def generator_loss(self, targets, outputs, fake_logits):
        """G's loss: gan_weight * GAN term + lambda * the reconstruction term (L1 or L2); with the GAN term and L1."""
        gen_gan = tf.constant(0.0) if fake_logits is None else losses.generator_gan_loss(fake_logits)
        gen_l1 = losses.l1_loss(targets, outputs)
        reconstruction = gen_l1 if self.reconstruction == "l1" else l2_loss(targets, outputs)
        return self.gan_weight * gen_gan + self.l1_weight * reconstruction, gen_gan, gen_l1

    def train_step(self, data):
        """Pix2Pix's step; or, simultaneous, both networks' steps from one verdict of D before its update."""
        if self.gan_update == "sequential" or not self.gan_weight:
            return super().train_step(data)
        inputs, targets = data
        with tf.GradientTape() as gen_tape, tf.GradientTape() as disc_tape:
            outputs = self.generator(inputs, training=True)
            real_logits = self.discriminate(inputs, targets)
            fake_logits = self.discriminate(inputs, outputs)  # one verdict serves both losses
            disc_loss = losses.discriminator_loss(real_logits, fake_logits)
            gen_total, gen_gan, gen_l1 = self.generator_loss(targets, outputs, fake_logits)
        minimize(self.disc_optimizer, disc_tape, disc_loss, self.discriminator)
        minimize(self.gen_optimizer, gen_tape, gen_total, self.generator)  # D's weights as read above
        return self.record(gen_total=gen_total, gen_gan=gen_gan, gen_l1=gen_l1, disc=disc_loss)


def build_model(config: Config, *, jit_compile: bool | str = "auto") -> Pix2Pix:
    """The model `config` asks for: `p2p.Pix2Pix` for the paper's settings, else a compiled `Pix2PixVariant`."""
    if not isinstance(config, VariantConfig) or not config.variant():
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


def train(data_dir, run_dir, config: Config | str = "cpu", **options):
    """`p2p.training.train` for a variant: `options` are `train`'s and any setting of VariantConfig."""
    settings = {k: options.pop(k) for k in list(options) if k in VariantConfig.__dataclass_fields__}
    return training.train(data_dir, run_dir, configure(config, **settings), build=build_model, **options)
