"""The lab's variants (p2p.lab.variants): the paper's settings take Pix2Pix's steps; each switch does what it says."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from p2p import Discriminator, Generator, Pix2Pix, data, losses
from p2p.config import get_preset
from p2p.lab.facades import facade_pair
from p2p.lab.variants import Pix2PixVariant, build_model, configure, l2_loss


def _batch(size=32):
    """One procedural facade: (label map, photo) in [-1, 1]."""
    pair = data.normalize(facade_pair((0, 0, 1), size)[None])
    return pair[:, :, size:], pair[:, :, :size]


def _variant(**options):
    keras.utils.set_random_seed(0)
    channels = 6 if options.get("conditional", True) else 3
    model = Pix2PixVariant(Generator(32, 8), Discriminator(32, 8, 1, in_channels=channels), **options)
    model.compile()
    return model


def _fit(model, batch, steps):
    dataset = tf.data.Dataset.from_tensors(batch).repeat()
    return model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False).history


@pytest.mark.slow  # trains both for steps: the full tier (tests/test_pix2pix.py checks the paper's step fast)
def test_with_the_papers_settings_the_variant_takes_pix2pix_steps():
    keras.utils.set_random_seed(0)
    paper = Pix2Pix(Generator(32, 8), Discriminator(32, 8, 1))
    paper.compile()
    variant, batch = _variant(), _batch()
    _fit(paper, batch, 3), _fit(variant, batch, 3)
    for a, b in zip(paper.weights, variant.weights):  # the same operations in the same order, dropout masks included:
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)  # equal up to float rounding


@pytest.mark.slow  # trains two models for several seconds: the full tier
def test_the_simultaneous_update_trains_d_alike_and_g_from_ds_verdict_before_its_update():
    batch = _batch()
    sequential, simultaneous = _variant(), _variant(gan_update="simultaneous")
    _fit(sequential, batch, 1), _fit(simultaneous, batch, 1)
    for a, b in zip(sequential.discriminator.trainable_weights, simultaneous.discriminator.trainable_weights):  # D step 1: same
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
    moved = [np.abs(a.numpy() - b.numpy()).max() for a, b in zip(sequential.generator.trainable_weights,
                                                                   simultaneous.generator.trainable_weights)]
    assert max(moved) > 1e-6  # G's gradient differs: it went through D before, not after, D's update


def test_l1_only_ablation_leaves_the_discriminator_alone():
    model, batch = _variant(gan_weight=0.0), _batch()
    before = [v.numpy().copy() for v in model.discriminator.weights]
    history = _fit(model, batch, 3)
    assert all(np.array_equal(a, b.numpy()) for a, b in zip(before, model.discriminator.weights))  # untouched: exact
    assert history["disc"][0] == 0.0  # a constant zero, exact
    assert history["gen_total"][0] == pytest.approx(100 * history["gen_l1"][0], rel=1e-5)  # two float32 means: ~3e-7 apart


@pytest.mark.slow  # trains two models for several seconds: the full tier
def test_gan_only_and_unconditional_ablations():
    history = _fit(_variant(l1_weight=0.0), _batch(), 3)
    assert history["gen_total"][0] == pytest.approx(history["gen_gan"][0])
    model = _variant(conditional=False)
    assert model.discriminator.input_shape[-1] == 3
    assert np.isfinite(_fit(model, _batch(), 3)["disc"][0])


@pytest.mark.parametrize("reconstruction", ["l1", "l2"])
def test_lambda_weighs_the_chosen_reconstruction_term(reconstruction):
    images, _ = _batch()
    keras.utils.set_random_seed(0)
    generator = Generator(32, 8, dropout=0.0)  # deterministic: the step's outputs are the ones computed here
    targets = tf.reverse(images, axis=[2])
    outputs = generator(images, training=True)
    model = Pix2PixVariant(generator, Discriminator(32, 8, 1), gan_weight=0.0, reconstruction=reconstruction)
    model.compile()
    logs = model.train_step((images, targets))
    term = {"l1": losses.l1_loss, "l2": l2_loss}[reconstruction](targets, outputs)
    assert float(logs["gen_total"]) == pytest.approx(100 * float(term), rel=1e-5)  # float32 means: rounding only
    assert float(logs["gen_l1"]) == pytest.approx(float(losses.l1_loss(targets, outputs)), rel=1e-5)


def test_l2_loss_is_the_mean_squared_error():
    squares = l2_loss(tf.zeros((1, 2, 2, 1)), tf.constant([0.0, 1.0, -2.0, 1.0], shape=(1, 2, 2, 1)))
    assert float(squares) == 1.5  # (0 + 1 + 4 + 1) / 4: small integers and a power of two, exact in float32


def test_build_model_makes_pix2pix_for_the_paper_and_variants_for_their_settings():
    tiny = get_preset("tiny", steps=10)
    assert type(build_model(tiny)) is Pix2Pix
    assert type(build_model(configure("tiny", steps=10))) is Pix2Pix  # a variant at the paper's settings
    faster_d = build_model(configure("tiny", steps=10, disc_lr_scale=10.0))
    assert type(faster_d) is Pix2PixVariant
    assert float(faster_d.disc_optimizer.learning_rate) == pytest.approx(10 * float(faster_d.gen_optimizer.learning_rate))
    assert build_model(configure("tiny", conditional=False)).discriminator.input_shape[-1] == 3
    with pytest.raises(ValueError, match="choose one of sequential, simultaneous"):
        configure("tiny", gan_update="alternating")
    with pytest.raises(ValueError, match="unknown reconstruction 'l3'; choose one of l1, l2"):
        configure("tiny", reconstruction="l3")
    with pytest.raises(ValueError, match="gan_weight must be 0 or more"):
        configure("tiny", gan_weight=-1.0)


@pytest.mark.slow  # trains tiny runs for several seconds: the full tier
def test_a_variant_run_folder_keeps_its_settings_apart_and_refuses_a_paper_resume(facades_root, tmp_path):
    from p2p import config as configs
    from p2p import training
    from p2p.lab import variants

    run = tmp_path / "run"
    variants.train(facades_root, run, "tiny", steps=2, log_every=2, gan_weight=0.0, progress=False)
    assert json.loads((run / "config.json").read_text())["variant"] == {"gan_weight": 0.0}
    assert variants.read(run).gan_weight == 0.0 and configs.read(run) == configs.resolve("tiny", steps=2, precision="float32")
    with pytest.raises(ValueError, match=r"the lab's variant settings \{'gan_weight': 0.0\} differ"):
        training.train(facades_root, run, "tiny", steps=4, log_every=2, progress=False)
    with pytest.raises(ValueError, match="gan_weight differ"):
        variants.train(facades_root, run, "tiny", steps=4, log_every=2, progress=False)
