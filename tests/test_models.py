"""The generator and the PatchGAN: the paper's architecture, its parameter counts and receptive fields."""

import numpy as np
import pytest
import tensorflow as tf
from keras import layers

from p2p.lab import bookruns, reference
from p2p.lab.evaluate import measured_receptive_field
from p2p.models import Discriminator, Generator, discriminator_block, downsample, receptive_field, upsample


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
    # the bottleneck's BatchNorm: the appendix writes C512 there, and the Lua code had it from its first commit until
    # b479b6b "remove batchnorm in the generator" (2017-03-03); PyTorch's innermost down-convolution has no norm
    paper, lua, pytorch_norm, tutorial_norm = reference.IMPLEMENTATIONS["BatchNorm at the 1x1 bottleneck"]
    assert paper.startswith("C512") and "BatchNorm" in paper
    assert lua.startswith("yes until b479b6b (2017-03-03)") and lua.endswith("none since")
    assert pytorch_norm.startswith("none") and tutorial_norm == "yes"
    assert "1,024 more until b479b6b" in reference.IMPLEMENTATIONS["trainable parameters G / D (256, 64)"][1]
    assert _trainable(Generator(256, 64, bottleneck_norm=True)) - g == 2 * 512  # that BatchNorm's scale and offset
    # Lua's G step: the loss from D's output before D's update (netD.output), back-propagated through the updated D
    lua_order = reference.IMPLEMENTATIONS["G's loss from D"][1]
    assert "before D's update" in lua_order and "through the updated D" in lua_order


# The architecture written out layer by layer from the appendix, independently of p2p.models. A model's layers in order
# with their weights in order are what the shipped book runs' generator.npz (loaded by position) and a run's checkpoints
# (object paths by layer index) rely on: any renamed, reordered, added or dropped layer or weight fails these tests.


def _listing(model):
    """Each layer as (name, class, its weights as (name, shape)), in the model's order: get_weights() follows it."""
    return [(layer.name, type(layer).__name__, [(w.name, tuple(w.shape)) for w in layer.weights]) for layer in model.layers]


def _conv(name, kernel, c_in, c_out, bias=False, transpose=False):
    shape = (kernel, kernel, c_out, c_in) if transpose else (kernel, kernel, c_in, c_out)  # Keras' kernel layouts
    return (f"{name}_conv", "Conv2DTranspose" if transpose else "Conv2D", [("kernel", shape)] + [("bias", (c_out,))] * bias)


def _norm(name, channels, kind="batch"):
    if kind == "instance":  # InstanceNorm without scale or offset: no weights
        return (f"{name}_in", "GroupNormalization", [])
    return (f"{name}_bn", "BatchNormalization", [(w, (channels,)) for w in ("gamma", "beta", "moving_mean", "moving_variance")])


def _up(name, c_in, c_out, upsample, bias=False):
    if upsample == "transpose":
        return [_conv(name, 4, c_in, c_out, bias, transpose=True)]
    return [(f"{name}_resize", "UpSampling2D", []), _conv(name, 3, c_in, c_out, bias)]


def _appendix_generator(size, ngf, skips=True, upsample="transpose", norm="batch", bottleneck_norm=False, dropout=True):
    """Encoder C64-C128-C256-C512-C512-... down to 1x1 (at ngf = 64): LeakyReLU, 4x4 convolution without bias, a norm but
    in the first block and (unless bottleneck_norm) the 1x1 one. Decoder: ReLU, doubling, norm, dropout in blocks 1-3,
    the skip concatenated after each block. Output: ReLU, doubling to 3 channels with a bias, tanh."""
    widths = [ngf * min(2**i, 8) for i in range(int(np.log2(size)))]
    rows, channels = [("input_image", "InputLayer", [])], 3
    for i, width in enumerate(widths, 1):
        rows += [(f"enc{i}_lrelu", "LeakyReLU", [])] * (i > 1) + [_conv(f"enc{i}", 4, channels, width)]
        rows += [_norm(f"enc{i}", width, norm)] * (1 < i < len(widths) or i == len(widths) and bottleneck_norm)
        channels = width
    for j, width in enumerate(reversed(widths[:-1]), 1):
        rows += [(f"dec{j}_relu", "ReLU", [])] + _up(f"dec{j}", channels, width, upsample) + [_norm(f"dec{j}", width, norm)]
        rows += [(f"dec{j}_dropout", "Dropout", [])] * (j <= 3 and dropout) + [(f"dec{j}_skip", "Concatenate", [])] * skips
        channels = 2 * width if skips else width
    return rows + [("out_relu", "ReLU", [])] + _up("out", channels, 3, upsample, bias=True) + [("out_tanh", "Activation", [])]


#: The appendix's discriminators at ndf = 64 by n_layers; 2 (34x34, the book runs') is not in the paper.
APPENDIX_PATCHGANS = {
    0: "C64-C128",  # 1x1, the PixelGAN
    1: "C64-C128",  # 16x16
    2: "C64-C128-C256",  # 34x34
    3: "C64-C128-C256-C512",  # 70x70, the paper's
    5: "C64-C128-C256-C512-C512-C512",  # 286x286, the ImageGAN
}


def _appendix_discriminator(n_layers, ndf=64, in_channels=6):
    """Each Ck: a 4x4 convolution (1x1 in the PixelGAN, n_layers=0) with BatchNorm but the first (which has a bias instead),
    then LeakyReLU; 4x4 ones are padded by 1. Then a convolution to one channel, with a bias but in the PixelGAN."""
    kernel = 4 if n_layers else 1
    widths = [int(c.removeprefix("C")) * ndf // 64 for c in APPENDIX_PATCHGANS[n_layers].split("-")]
    rows, channels = [("pair", "InputLayer", [])], in_channels
    for k, width in enumerate(widths, 1):
        rows += [(f"c{k}_pad", "ZeroPadding2D", [])] * (kernel == 4) + [_conv(f"c{k}", kernel, channels, width, bias=k == 1)]
        rows += [_norm(f"c{k}", width)] * (k > 1) + [(f"c{k}_lrelu", "LeakyReLU", [])]
        channels = width
    rows += [("out_pad", "ZeroPadding2D", [])] * (kernel == 4)
    return rows + [_conv("out", kernel, channels, 1, bias=n_layers > 0), ("logits", "Activation", [])]


@pytest.mark.parametrize("size, ngf, skips, upsample, norm, bottleneck_norm", [
    (256, 64, True, "transpose", "batch", False),  # the paper's U-Net
    (256, 64, False, "transpose", "batch", False),  # its encoder-decoder
    (128, 16, True, "transpose", "batch", False),  # the book runs'
    (128, 16, False, "resize", "instance", True),
    (128, 8, True, "resize", "batch", True),
    (32, 8, False, "transpose", "instance", False),
    (32, 16, True, "resize", "instance", True),
    (32, 8, True, "transpose", "batch", True),
])
def test_the_generator_is_the_appendix_layer_for_layer(size, ngf, skips, upsample, norm, bottleneck_norm):
    model = Generator(size, ngf, skips, upsampling=upsample, norm=norm, bottleneck_norm=bottleneck_norm)
    expected = _appendix_generator(size, ngf, skips, upsample, norm, bottleneck_norm)
    assert _listing(model) == expected
    assert [w.shape for w in model.get_weights()] == [shape for _, _, weights in expected for _, shape in weights]


@pytest.mark.parametrize("n_layers, size", [(0, 32), (1, 32), (2, 128), (3, 256), (5, 512)])
def test_the_patchgan_is_the_appendix_layer_for_layer(n_layers, size):
    model = Discriminator(size, 64, n_layers)
    assert _listing(model) == _appendix_discriminator(n_layers)
    strides = [layer.strides[0] for layer in model.layers if isinstance(layer, layers.Conv2D)]
    assert strides == ([2] * n_layers + [1, 1] if n_layers else [1, 1, 1])  # stride 2 but the last Ck and the output
    assert _listing(Discriminator(size, 8, n_layers, in_channels=3)) == _appendix_discriminator(n_layers, 8, 3)


@pytest.mark.parametrize("name", list(bookruns.BOOK_RUNS))
def test_the_shipped_book_runs_load_into_the_layers_they_were_trained_as(name):
    generator, config = bookruns.load(name, verbose=False)  # generator.npz, assigned by position
    assert _listing(generator) == _appendix_generator(config.image_size, config.ngf, config.skips,
                                                      dropout=config.dropout > 0)
    models = [generator] + ([bookruns.load_discriminator(name)] if bookruns.get(name).keep_discriminator else [])
    norms = [layer for model in models for layer in model.layers if isinstance(layer, layers.BatchNormalization)]
    # trained statistics where they belong: a gamma, beta or mean loaded there by a shifted order would not all be > 0
    assert norms and all(float(tf.reduce_min(layer.moving_variance)) > 0 for layer in norms)


def test_the_blocks_run_on_a_tensor_as_the_chapters_call_them():
    assert downsample(tf.zeros((1, 256, 256, 3)), 64, "demo", activation=False, normalise=False).shape == (1, 128, 128, 64)
    assert upsample(tf.zeros((1, 2, 2, 1024)), 512, "demo").shape == (1, 4, 4, 512)
    assert upsample(tf.zeros((1, 2, 2, 1024)), 512, "demo", kind="resize").shape == (1, 4, 4, 512)
    assert discriminator_block(tf.zeros((1, 256, 256, 6)), 64, 4, 2, "demo", normalise=False).shape == (1, 128, 128, 64)
    assert discriminator_block(tf.zeros((1, 32, 32, 256)), 512, 4, 1, "demo").shape == (1, 31, 31, 512)
    # eagerly, BatchNorm runs in inference mode: in training mode at batch 1 on a 1x1 map it would output its beta, 0
    bottleneck = downsample(tf.random.stateless_normal((1, 2, 2, 8), seed=(1, 2)), 8, "demo")
    assert bottleneck.shape == (1, 1, 1, 8) and float(tf.reduce_min(tf.abs(bottleneck))) > 0
    # and dropout is off: no unit is zeroed
    decoded = upsample(tf.random.stateless_normal((1, 4, 4, 8), seed=(3, 4)), 16, "demo", dropout=0.5)
    assert not bool(tf.reduce_any(decoded == 0))
