"""Pix2Pix: the objective, the train step, XLA and mixed precision (the ablations: test_variants.py)."""

import json
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from p2p import Discriminator, Generator, Pix2Pix, data, losses
from p2p.lab import reference
from p2p.lab.facades import facade_pair


def _batch(size=32):
    """One procedural facade: (label map, photo) in [-1, 1]."""
    pair = data.normalize(facade_pair((0, 0, 1), size)[None])
    return pair[:, :, size:], pair[:, :, :size]


def _model(size=32, jit_compile=False, dropout=0.5, **options):
    keras.utils.set_random_seed(0)
    model = Pix2Pix(Generator(size, 8, dropout=dropout), Discriminator(size, 8, 1), **options)
    model.compile(jit_compile=jit_compile)
    return model


def _fit(model, batch, steps):
    dataset = tf.data.Dataset.from_tensors(batch).repeat()
    return model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False).history


def test_losses_follow_the_paper():
    zeros = tf.zeros((1, 30, 30, 1))
    assert float(losses.discriminator_loss(zeros, zeros)) == pytest.approx(math.log(2), rel=1e-5)  # halved: (l + l) / 2
    assert float(losses.generator_gan_loss(zeros)) == pytest.approx(math.log(2), rel=1e-5)
    # non-saturating: when D is sure the output is fake, G's gradient stays large
    confident_fake = tf.Variable(tf.fill((1, 4, 4, 1), -10.0))
    with tf.GradientTape() as tape:
        loss = losses.generator_gan_loss(confident_fake)
    assert float(tf.reduce_sum(tf.abs(tape.gradient(loss, confident_fake)))) > 0.9
    assert float(losses.l1_loss(tf.ones((2, 2)), -tf.ones((2, 2)))) == 2.0


def test_a_few_steps_lower_the_l1_loss_on_a_fixed_batch():
    model, batch = _model(), _batch()
    before = float(losses.l1_loss(batch[1], model.translate(batch[0])))
    history = _fit(model, batch, 40)
    after = float(losses.l1_loss(batch[1], model.translate(batch[0])))
    assert after < 0.85 * before
    assert set(history) == {"gen_total", "gen_gan", "gen_l1", "disc"}
    # the means over the epoch of each loss, accumulated apart in float32: a few 1e-7 apart, 1e-5 leaves room
    assert history["gen_total"][0] == pytest.approx(history["gen_gan"][0] + 100 * history["gen_l1"][0], rel=1e-5)


def test_gs_step_is_judged_by_d_after_ds_step():
    # the paper's order (PyTorch's optimize_parameters): D steps first, then G's adversarial loss is D's verdict, as
    # updated, on G's output from before G's step. Without dropout G(x) is deterministic, so it can be recomputed.
    keras.utils.set_random_seed(0)
    model = Pix2Pix(Generator(32, 8, dropout=0.0), Discriminator(32, 8, 1))
    model.compile()
    x, y = _batch()
    before = keras.models.clone_model(model.generator)
    before.set_weights(model.generator.get_weights())
    judge = keras.models.clone_model(model.discriminator)
    judge.set_weights(model.discriminator.get_weights())
    logs = model.train_step((x, y))
    outputs = before(x, training=True)
    updated = model.discriminator(tf.concat([x, outputs], -1), training=True)
    unchanged = judge(tf.concat([x, outputs], -1), training=True)
    np.testing.assert_allclose(float(logs["gen_gan"]), float(losses.generator_gan_loss(updated)), rtol=1e-5)
    assert abs(float(losses.generator_gan_loss(unchanged)) - float(logs["gen_gan"])) > 1e-4  # the order shows


def test_a_discriminator_that_does_not_see_the_pair_is_refused():
    with pytest.raises(ValueError, match="in_channels=6"):
        Pix2Pix(Generator(32, 8), Discriminator(32, 8, 1, in_channels=3))


def test_a_discriminator_for_another_image_size_is_refused():
    with pytest.raises(ValueError, match=r"the discriminator takes 64x64 pairs but the generator's are 32x32: build it "
                                         r"with Discriminator\(32, \.\.\.\)"):
        Pix2Pix(Generator(32, 8), Discriminator(64, 8, 1))


@pytest.mark.parametrize("l1_weight", [-1.0, math.inf, math.nan])
def test_a_negative_or_infinite_l1_weight_is_refused(l1_weight):
    with pytest.raises(ValueError, match=rf"l1_weight must be a finite number, 0 or more, not {l1_weight}"):
        Pix2Pix(Generator(32, 8), Discriminator(32, 8, 1), l1_weight=l1_weight)


def test_the_optimizers_are_keras_adam_with_the_papers_settings():
    model = _model()
    for optimizer in (model.gen_optimizer, model.disc_optimizer):
        assert type(optimizer) is keras.optimizers.Adam
        assert (float(optimizer.learning_rate), optimizer.beta_1, optimizer.beta_2) == pytest.approx((2e-4, 0.5, 0.999))


@pytest.mark.slow  # trains or measures for several seconds: the full tier, not `make check`
def test_xla_gives_the_same_training_as_plain_tensorflow():
    # without dropout: XLA draws its random numbers with another algorithm, so other dropout masks
    batch = _batch()
    plain, xla = _model(jit_compile=False, dropout=0.0), _model(jit_compile=True, dropout=0.0)
    for step in range(3):  # the same losses step after step, and the same weights after
        plain_logs, xla_logs = _fit(plain, batch, 1), _fit(xla, batch, 1)
        for name in plain_logs:
            assert xla_logs[name][0] == pytest.approx(plain_logs[name][0], rel=1e-4, abs=1e-5), (step, name)
    for a, b in zip(plain.generator.weights, xla.generator.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-4)


@pytest.fixture
def policy():
    def use(name):
        keras.mixed_precision.set_global_policy(name)

    yield use
    keras.mixed_precision.set_global_policy("float32")


@pytest.mark.slow  # trains or measures for several seconds: the full tier, not `make check`
@pytest.mark.parametrize("name", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_trains(policy, name):
    policy(name)
    model, batch = _model(), _batch()
    assert model.generator.get_layer("enc2_conv").compute_dtype == name.removeprefix("mixed_")
    assert model.generator.output.dtype == "float32"
    scaled = isinstance(model.gen_optimizer, keras.optimizers.LossScaleOptimizer)
    assert scaled == (name == "mixed_float16")
    before = float(losses.l1_loss(batch[1], model.translate(batch[0])))
    history = _fit(model, batch, 20)
    assert all(np.isfinite(v[0]) for v in history.values())
    assert float(losses.l1_loss(batch[1], model.translate(batch[0]))) < before


@pytest.mark.slow  # trains or measures for several seconds: the full tier, not `make check`
def test_the_precision_option_builds_and_records_the_policy(facades_root, tmp_path):
    from p2p import training
    from p2p.runtime import devices

    assert devices.resolve_precision("auto") == "float32"  # no GPU or TPU here
    with pytest.raises(ValueError, match="choose one of auto, float32"):
        devices.resolve_precision("float8")
    model = training.train(facades_root, tmp_path / "run", "tiny", steps=2, log_every=2, precision="mixed_bfloat16",
                           progress=False)
    assert model.generator.get_layer("enc2_conv").compute_dtype == "bfloat16"
    assert keras.mixed_precision.global_policy().name == "float32"  # the option does not leak
    assert json.loads((tmp_path / "run" / "config.json").read_text())["precision"] == "mixed_bfloat16"


def test_halving_d_loss_changes_nothing_under_adam_unlike_halving_its_learning_rate():
    keras.utils.set_random_seed(0)
    discriminator = Discriminator(32, 8, 1)
    rng = np.random.default_rng(0)
    pair = lambda: tf.constant(rng.uniform(-1, 1, (1, 32, 32, 6)), tf.float32)
    batches = [(pair(), pair()) for _ in range(20)]
    whole = reference.discriminator_updates(discriminator, batches, loss_factor=1.0)  # the tutorial's sum
    halved = reference.discriminator_updates(discriminator, batches, loss_factor=0.5)  # the paper's
    slower = reference.discriminator_updates(discriminator, batches, loss_factor=1.0, learning_rate=1e-4)
    relative = lambda other: np.linalg.norm(other - whole) / np.linalg.norm(whole)
    assert relative(halved) < 0.1  # only where a gradient is as small as Adam's epsilon does the scale show (0.027 measured)
    assert relative(slower) > 0.4  # what halving would do to plain SGD
    # and that difference is all epsilon's: made negligible, the halved loss moves D exactly as the whole one
    negligible = {"epsilon": 1e-30}
    whole = reference.discriminator_updates(discriminator, batches, loss_factor=1.0, **negligible)
    assert relative(reference.discriminator_updates(discriminator, batches, loss_factor=0.5, **negligible)) < 1e-6
