"""Reference train steps, written plainly, that p2p's step is measured and checked against.

- `tutorial_step`: the TensorFlow tutorial's step. One pass of D over the real pairs and one
  over the generated pairs, shared by both losses; both networks updated together from them
  (so G's loss and its gradient come from D before D's update); D's loss is the sum of its two
  terms, not halved (`disc_loss_factor=2`; 1 gives p2p's halved loss, to compare at one scale).
- `paper_step`: p2p's own step (`Pix2Pix.train_step`, the paper's, in the official PyTorch
  code's order), called as a plain tf.function rather than by `fit`: written once, in p2p.

Both take the model's own optimizers: the benchmark (`p2p.lab.bench`) gives them p2p's default,
Keras' Adam with the paper's settings (`p2p.optimizers.paper_optimizer`), as the tutorial uses, or
`p2p.lab.fused_adam.FusedAdam` as a lever. `training_difference` checks that p2p trains exactly
as the reference it names, with D's loss at the same scale. Explained in the appendix "Scaling up".

`discriminator_updates` trains D alone on a scaled loss: under Adam, halving D's loss (the
paper's way to slow D down) changes D's steps only through Adam's epsilon (the appendix
"Scaling up" measures it; the chapter "The conditional GAN objective" states the conclusion).
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

from p2p import data, inference, losses
from p2p.config import get_preset
from p2p.lab import variants
from p2p.models import Discriminator, Generator, generator_filters
from p2p.optimizers import PAPER_ADAM, paper_optimizer


def tutorial_step(model, *, jit_compile: bool = False, disc_loss_factor: float = 2.0):
    """The TensorFlow tutorial's train step for `model`'s networks and optimizers.

    D minimises `disc_loss_factor` times p2p's halved loss: 2 is the tutorial's sum of
    its two terms; 1 is p2p's scale, which `training_difference` compares at (under Adam
    the factor changes the steps only through epsilon, measured in the appendix "Scaling
    up"). Explained in the appendix "Scaling up".
    """
    generator, discriminator = model.generator, model.discriminator
    g_weights, d_weights = generator.trainable_variables, discriminator.trainable_variables

    @tf.function(jit_compile=jit_compile)
    def train_step(inputs, targets):
        with tf.GradientTape() as gen_tape, tf.GradientTape() as disc_tape:
            outputs = generator(inputs, training=True)
            real = discriminator(tf.concat([inputs, targets], -1), training=True)
            # one verdict for both losses
            fake = discriminator(tf.concat([inputs, outputs], -1), training=True)
            gen_gan = losses.generator_gan_loss(fake)
            gen_l1 = losses.l1_loss(targets, outputs)
            gen_total = gen_gan + model.l1_weight * gen_l1
            disc = losses.discriminator_loss(real, fake)  # halved, as p2p logs it
            disc_minimised = disc_loss_factor * disc  # the tutorial's: real + generated
        gen_gradients = gen_tape.gradient(gen_total, g_weights)
        disc_gradients = disc_tape.gradient(disc_minimised, d_weights)
        model.gen_optimizer.apply_gradients(zip(gen_gradients, g_weights))
        model.disc_optimizer.apply_gradients(zip(disc_gradients, d_weights))
        return {"gen_total": gen_total, "gen_gan": gen_gan, "gen_l1": gen_l1, "disc": disc}

    return train_step


def paper_step(model, *, jit_compile: bool = False):
    """p2p's own step, `Pix2Pix.train_step`, as a plain tf.function of (x, y)."""
    return tf.function(lambda inputs, targets: model.train_step((inputs, targets)),
                       jit_compile=jit_compile)


#: The outside reference each of p2p's update orders reproduces: the tutorial's step for the
#: simultaneous one (`p2p.lab.variants`); the paper's step is p2p's own, checked by its tests.
REFERENCE_OF = {"sequential": paper_step, "simultaneous": tutorial_step}


def training_difference(p2p_model, reference_model, batches, steps: int = 5,
                        disc_loss_factor: float = 1.0) -> dict[str, float]:
    """Train p2p's model and a copy with its reference step on the same batches; how far apart they end.

    The two models start from the same weights. p2p's update order picks the reference
    (REFERENCE_OF): `p2p.Pix2Pix` takes the paper's step ("sequential"), a
    `p2p.lab.variants.Pix2PixVariant` its `gan_update`. `reference_model` should have the same kind
    of optimizers as `p2p_model` (the benchmark gives both Keras' Adam). The simultaneous
    reference, the tutorial's step, minimises D's loss times `disc_loss_factor`: 1 by default,
    p2p's halved loss, so that the two runs compute the same numbers and differ only by
    rounding; 2 is the tutorial's own sum, which differs from p2p's also through Adam's epsilon.
    Returns the largest relative difference of any loss at any step, and the size of the
    difference between the two runs' weight updates relative to the size of the updates (Adam
    divides each gradient by its running size, so where a gradient is nearly zero rounding alone
    can flip a weight's step: single weights may differ by up to the learning rate, the updates
    as a whole by far less).
    """
    start = [w.numpy() for w in _weights(p2p_model)]
    for mine, theirs in zip(_weights(reference_model), start):
        mine.assign(theirs)
    p2p_step = tf.function(p2p_model.train_step)
    make_step = REFERENCE_OF[getattr(p2p_model, "gan_update", "sequential")]
    reference = (make_step(reference_model, disc_loss_factor=disc_loss_factor) if make_step is tutorial_step
                 else make_step(reference_model))
    history, loss_difference = [], 0.0
    for inputs, targets in batches.take(steps):
        p2p_logs = p2p_step((inputs, targets))  # running means over the steps so far
        history.append({name: float(value) for name, value in reference(inputs, targets).items()})
        for name, value in p2p_logs.items():
            mean = np.mean([logs[name] for logs in history])
            loss_difference = max(loss_difference, abs(float(value) - mean) / max(abs(mean), 1e-6))
    p2p_updates = np.concatenate([(w.numpy() - s).ravel() for w, s in zip(_weights(p2p_model), start)])
    reference_updates = np.concatenate([(w.numpy() - s).ravel() for w, s in zip(_weights(reference_model), start)])
    update_difference = np.linalg.norm(p2p_updates - reference_updates) / np.linalg.norm(reference_updates)
    return {"losses": float(loss_difference), "updates": float(update_difference)}


def _weights(model):
    """All weights of both networks, trainable or not, in a fixed order."""
    return model.generator.weights + model.discriminator.weights


def discriminator_updates(discriminator, batches, *, loss_factor: float, learning_rate: float | None = None,
                          epsilon: float | None = None) -> np.ndarray:
    """How D's weights move in Adam steps on `loss_factor` x its summed loss (appendix "Scaling up").

    Each batch is (real_pairs, fake_pairs). D is trained from its current weights on a copy,
    with the paper's Adam (or another `learning_rate`, or another `epsilon` than Keras' 1e-7);
    returns the change of every trainable weight, flattened (BatchNorm's moving statistics,
    which move alike either way, are left out). loss_factor 0.5 is the paper's halved loss, 1
    the TensorFlow tutorial's sum. Keras' Adam steps a weight by
    lr * sqrt(1 - beta_2^t) / (1 - beta_1^t) * m / (sqrt(v) + epsilon), m and v the running means
    of the gradient and its square without bias correction: a factor on the loss scales m and
    sqrt(v) alike and cancels, except where epsilon is not small against sqrt(v).
    """
    copy = keras.models.clone_model(discriminator)
    copy.set_weights(discriminator.get_weights())
    settings = {"learning_rate": learning_rate, "epsilon": epsilon}
    optimizer = keras.optimizers.Adam(**{**PAPER_ADAM, **{k: v for k, v in settings.items() if v is not None}})
    for real, fake in batches:
        with tf.GradientTape() as tape:
            loss = loss_factor * 2 * losses.discriminator_loss(copy(real, training=True), copy(fake, training=True))
        optimizer.apply(tape.gradient(loss, copy.trainable_variables), copy.trainable_variables)
    pairs = zip(copy.trainable_variables, discriminator.trainable_variables)
    return np.concatenate([(after.numpy() - before.numpy()).ravel() for after, before in pairs])


#: The published implementations' choices, row by row, from their sources (chapter "Reproducing the paper"): the paper
#: (arXiv 1611.07004 v3 and its appendix), the original Lua code (phillipi/pix2pix: models.lua, train.lua, test.lua),
#: the official PyTorch code (junyanz/pytorch-CycleGAN-and-pix2pix) and the TensorFlow tutorial (tensorflow/docs,
#: tutorials/generative/pix2pix). p2p's own column is measured from the package by `p2p_choices`.
#: The Lua code's history matters for two rows. Its models.lua batch-normalised the 1x1 bottleneck (e8, e7 in unet_128)
#: from the first commit (7afe88f, 2016-11-16) until b479b6b "remove batchnorm in the generator" (2017-03-03), so the
#: code released with the paper's first version had it, as the appendix's C512 says. And its train.lua runs
#: optim.adam(fDx) then optim.adam(fGx): fGx takes G's loss from netD.output, D's verdict from fDx's forward pass
#: before D's update, but back-propagates it with netD:updateGradInput, through D's weights as optim.adam(fDx) just
#: updated them (at the activations and batch statistics of that earlier forward pass).
IMPLEMENTATIONS = {
    "dropout placement": ("decoder layers 1-3 (CD512 x 3)", "decoder layers 1-3", "decoder blocks 2-4, none innermost",
                          "decoder layers 1-3"),
    "BatchNorm at the 1x1 bottleneck": ("C512 written (with BatchNorm)",
                                        "yes until b479b6b (2017-03-03); none since",
                                        "none (innermost down-convolution)", "yes"),
    "D's loss halved": ("yes, 'to slow down D'", "reported errD only; gradient of the sum", "yes (loss_D * 0.5)",
                        "no: real + generated"),
    "Adam's epsilon": ("not said", "1e-8 (optim.adam), added to the uncorrected sqrt(v)",
                       "1e-8, added to the bias-corrected sqrt(v) (since pytorch#22628, 2019; uncorrected before)",
                       "1e-7 (Keras), added to the uncorrected sqrt(v)"),
    "G's loss from D": ("not said", "D's output before D's update; back-propagated through the updated D",
                        "after D's update (3 D passes)", "before D's update (2 D passes: real, generated)"),
    "learning-rate schedule": ("not said (2e-4)", "constant, 200 epochs", "100 epochs constant + 100 linear to 0",
                               "constant"),
    "resize interpolation": ("not said", "bilinear", "bicubic", "nearest neighbour"),
    "LeakyReLU slope": ("0.2", "0.2", "0.2", "0.3 (Keras default)"),
    "D's first-layer bias": ("not said", "none: all biases zeroed every step", "yes", "no"),
    "weight init": ("N(0, 0.02)", "N(0, 0.02); BatchNorm scale N(1, 0.02)", "N(0, 0.02); BatchNorm scale N(1, 0.02)",
                    "N(0, 0.02); BatchNorm scale 1"),
    "trainable parameters G / D (256, 64)": ("-", "as PyTorch (its biases zeroed); G 1,024 more until b479b6b",
                                            "54,413,955 / 2,768,705",
                                            "54,414,979 / 2,768,641"),
    "test time": ("dropout on, batch statistics", "training mode, batch 1", "training mode (no --eval), batch 1",
                  "training=True, one image at a time"),
}
IMPLEMENTATION_NAMES = ("paper", "Lua", "PyTorch", "TF tutorial")


def p2p_choices(image_size: int = 64, ngf: int = 8) -> dict[str, str]:
    """p2p's column of the five-implementations table, measured on its own models and code (chapter "Reproducing the paper").

    The architecture rows are read off a Generator and Discriminator of `image_size` and `ngf`
    (the parameter counts at 256 and 64); resizing and test time are checked by running them.
    """
    generator, discriminator = Generator(image_size, ngf), Discriminator(image_size, ngf, 3)
    dropout = [layer.name.split("_")[0].removeprefix("dec") for layer in generator.layers
               if isinstance(layer, keras.layers.Dropout)]
    bottleneck = f"enc{len(generator_filters(image_size, ngf))}"
    normalised = any(layer.name == f"{bottleneck}_bn" for layer in generator.layers)
    slopes = sorted({float(layer.negative_slope) for layer in generator.layers + discriminator.layers
                     if isinstance(layer, keras.layers.LeakyReLU)})
    chance = float(losses.discriminator_loss(tf.zeros((1, 1)), tf.zeros((1, 1))))  # log 2 halved, 2 log 2 summed
    init = generator.get_layer("enc1_conv").kernel_initializer.get_config()
    gamma = generator.get_layer("dec1_bn").gamma_initializer.get_config()
    trainable = lambda model: sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    images = tf.random.uniform((2, image_size, image_size, 3), -1.0, 1.0, seed=0)
    bicubic = tf.clip_by_value(tf.image.resize(images, [9, 9], method="bicubic", antialias=True), -1.0, 1.0)
    alone = inference.translate(generator, images[:1], dropout=False)
    with_another = inference.translate(generator, images, dropout=False)[:1]
    lr_decay = get_preset("paper").lr_decay
    # one step of the paper's Adam on a gradient of epsilon, in units of the learning rate: 1/2 if epsilon were added
    # to the bias-corrected sqrt(v), sqrt(1 - beta_2) / (sqrt(1 - beta_2) + 1) = 0.03 if to the uncorrected one (Keras')
    optimizer, weight = paper_optimizer(), keras.Variable([0.0])
    optimizer.apply([tf.constant([optimizer.epsilon])], [weight])
    first_step = -float(weight.numpy()[0]) / PAPER_ADAM["learning_rate"]
    epsilon = f"{optimizer.epsilon:.0e}".replace("e-0", "e-")  # 1e-7, as the other columns write it
    return {
        "dropout placement": f"decoder layers {'-'.join((dropout[0], dropout[-1]))}",
        "BatchNorm at the 1x1 bottleneck": "yes" if normalised else "none (bottleneck_norm=True: the tutorial's)",
        "D's loss halved": "yes" if math.isclose(chance, math.log(2), rel_tol=1e-5) else "no",
        "Adam's epsilon": f"{epsilon} (Keras), added to the {'uncorrected' if first_step < 0.25 else 'corrected'} sqrt(v)",
        "G's loss from D": f"after D's update; gan_update={variants.CHOICES['gan_update'][1]!r}: before",
        "learning-rate schedule": f"constant; the paper preset: linear to 0 over its last {lr_decay:.0%}" if lr_decay
                                  else "constant",
        "resize interpolation": "bicubic (antialiased)" if np.allclose(data.resize(images, 9), bicubic) else "not bicubic",
        "LeakyReLU slope": ", ".join(f"{s:g}" for s in slopes),
        "D's first-layer bias": "yes" if discriminator.get_layer("c1_conv").use_bias else "no",
        "weight init": f"N({init['mean']:g}, {init['stddev']:g}); BatchNorm scale N({gamma['mean']:g}, {gamma['stddev']:g})",
        "trainable parameters G / D (256, 64)": f"{trainable(Generator(256, 64)):,} / {trainable(Discriminator(256, 64, 3)):,}",
        "test time": "training mode, one image at a time" if np.allclose(alone, with_another, atol=1e-5) else "batched",
    }
