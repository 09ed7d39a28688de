"""The generator and the PatchGAN: the paper's architecture, its parameter counts and receptive fields."""

import numpy as np
import pytest
import tensorflow as tf
from keras import layers

from p2p.lab import reference
from p2p.lab.evaluate import measured_receptive_field
from p2p.models import Discriminator, Generator, receptive_field


def _trainable(model):
    return sum(int(np.prod(v.shape)) for v in model.trainable_variables)


@pytest.fixture(scope="module")
def paper_models():
    """The paper's U-Net and 70x70 PatchGAN at 256 px, ngf = ndf = 64: built once for the tests that read them."""
    return Generator(256, 64), Discriminator(256, 64, 3)


def test_parameter_counts_match_the_official_implementation(paper_models):
    generator, discriminator = paper_models
    assert round(_trainable(generator) / 1e6, 3) == 54.414
    assert round(_trainable(discriminator) / 1e6, 3) == 2.769
    assert discriminator.output_shape == (None, 30, 30, 1)


@pytest.mark.parametrize("size", [64, 128, 256, 512])
def test_generator_depth_follows_the_image_size(size):
    generator = Generator(size, ngf=4)
    assert generator.output_shape == (None, size, size, 3)
    encoder = [layer for layer in generator.layers if layer.name.startswith("enc") and isinstance(layer, layers.Conv2D)]
    assert len(encoder) == int(np.log2(size))
    assert encoder[-1].output.shape[1:3] == (1, 1)


def test_generator_layers_follow_the_paper(paper_models):
    generator, _ = paper_models
    names = {layer.name for layer in generator.layers}
    assert "enc1_bn" not in names and "enc8_bn" not in names  # no norm on C64 nor on the 1x1 bottleneck
    assert {"enc2_bn", "enc7_bn"} <= names
    dropouts = {layer.name for layer in generator.layers if isinstance(layer, layers.Dropout)}
    assert dropouts == {"dec1_dropout", "dec2_dropout", "dec3_dropout"}
    assert all(layer.negative_slope == pytest.approx(0.2) for layer in generator.layers if isinstance(layer, layers.LeakyReLU))
    widths = [layer.filters for layer in generator.layers if isinstance(layer, layers.Conv2D) and layer.name.startswith("enc")]
    assert widths == [64, 128, 256, 512, 512, 512, 512, 512]
    skip_channels = [layer.output.shape[-1] for layer in generator.layers if isinstance(layer, layers.Concatenate)]
    assert skip_channels == [1024, 1024, 1024, 1024, 512, 256, 128]  # CD512-CD1024-CD1024-C1024-C1024-C512-C256-C128
    kernel = generator.get_layer("enc4_conv").kernel.numpy()
    assert abs(kernel.mean()) < 1e-3 and kernel.std() == pytest.approx(0.02, rel=0.05)


def test_encoder_decoder_has_no_skips(paper_models):
    encoder_decoder = Generator(256, 64, skips=False)
    assert not any(isinstance(layer, layers.Concatenate) for layer in encoder_decoder.layers)
    assert _trainable(encoder_decoder) < _trainable(paper_models[0])


@pytest.mark.parametrize("bottleneck_norm, carries_information", [(False, True), (True, False)])
def test_the_bottleneck_carries_information_only_without_batchnorm(bottleneck_norm, carries_information):
    # At batch size 1 in training mode, BatchNorm over a 1x1 map outputs its beta whatever the input.
    tf.keras.utils.set_random_seed(0)
    model = Generator(64, 8, skips=False, dropout=0.0, bottleneck_norm=bottleneck_norm)
    a, b = tf.random.uniform((1, 64, 64, 3), -1, 1), tf.random.uniform((1, 64, 64, 3), -1, 1)
    difference = float(tf.reduce_max(tf.abs(model(a, training=True) - model(b, training=True))))
    # Without BatchNorm there the outputs differ by 0.28 (measured); with it only by float rounding (0.0 here, and
    # float32 residue elsewhere would stay orders of magnitude below 1e-3)
    assert (difference > 1e-3) == carries_information


@pytest.mark.parametrize("n_layers, field", [(0, 1), (1, 16), (3, 70), (5, 286)])
def test_receptive_fields_are_computed_and_hold_empirically(n_layers, field):
    size = 512 if n_layers == 5 else 128
    discriminator = Discriminator(size, ndf=4, n_layers=n_layers)
    assert receptive_field(discriminator) == field
    # exact integers: outside the field an input pixel has no path to the centre output, so its gradient is 0.0
    # exactly, not a rounded small number
    assert measured_receptive_field(discriminator) == (field, field)


def test_discriminator_too_deep_for_the_image_is_refused():
    with pytest.raises(ValueError, match="too small for n_layers=5"):
        Discriminator(64, 8, n_layers=5)
    with pytest.raises(ValueError, match="power of two"):
        Generator(100)


def test_the_five_implementations_table_p2p_column_and_the_counts_it_quotes(paper_models):
    choices = reference.p2p_choices()
    assert set(choices) == set(reference.IMPLEMENTATIONS)
    assert choices["dropout placement"] == "decoder layers 1-3"  # the paper's and Lua's, not PyTorch's 2-4
    assert choices["BatchNorm at the 1x1 bottleneck"].startswith("none") and choices["D's loss halved"] == "yes"
    assert choices["LeakyReLU slope"] == "0.2" and choices["D's first-layer bias"] == "yes"
    assert choices["test time"] == "training mode, one image at a time"
    assert choices["resize interpolation"].startswith("bicubic")
    g, d = (_trainable(model) for model in paper_models)
    assert choices["trainable parameters G / D (256, 64)"] == f"{g:,} / {d:,}"
    pytorch, tutorial = (reference.IMPLEMENTATIONS["trainable parameters G / D (256, 64)"][i] for i in (2, 3))
    assert pytorch == f"{g:,} / {d:,}"  # the same layers and biases as the official PyTorch code
    # the tutorial: BatchNorm at the bottleneck (its scale and offset), and no bias in D's first layer (64 of them)
    assert tutorial == f"{_trainable(Generator(256, 64, bottleneck_norm=True)):,} / {d - 64:,}"
