"""The generator (U-Net or encoder-decoder) and the PatchGAN discriminator of the paper's appendix 6.1.

Layer for layer and parameter for parameter these follow the paper and, where it is silent,
the official PyTorch code. Explained in the chapters "The generator" and "The PatchGAN
discriminator".
"""

from __future__ import annotations

import math
from typing import NamedTuple

import keras
from keras import layers


def _init():
    """Weights drawn from N(0, 0.02), as in the paper."""
    return keras.initializers.RandomNormal(0.0, 0.02)


def _batch_norm(name):
    """BatchNorm with the official code's settings: momentum 0.1 (PyTorch's), eps 1e-5, gamma ~ N(1, 0.02)."""
    return layers.BatchNormalization(
        momentum=0.9, epsilon=1e-5, gamma_initializer=keras.initializers.RandomNormal(1.0, 0.02), name=name
    )


#: How the generator's decoder doubles a map's size: a transposed convolution (the paper's), or resize-then-convolve.
UPSAMPLES = ("transpose", "resize")

#: The generator's normalisation: BatchNorm (the paper's), or InstanceNorm (the official code's `--norm instance`).
NORMS = ("batch", "instance")


def _norm(kind: str, name: str):
    """The generator's normalisation layer: `_batch_norm`, or InstanceNorm without scale or offset as in the official code."""
    if kind == "batch":
        return _batch_norm(f"{name}_bn")
    return layers.GroupNormalization(groups=-1, epsilon=1e-5, center=False, scale=False, name=f"{name}_in")


def _upsample(kind: str, filters: int, name: str, use_bias: bool = False) -> list:
    """The layers that double a map's size: a 4x4 stride-2 transposed convolution, or nearest resize then a 3x3 convolution."""
    if kind == "transpose":
        return [layers.Conv2DTranspose(filters, 4, 2, "same", use_bias=use_bias, kernel_initializer=_init(), name=f"{name}_conv")]
    return [layers.UpSampling2D(2, interpolation="nearest", name=f"{name}_resize"),
            layers.Conv2D(filters, 3, 1, "same", use_bias=use_bias, kernel_initializer=_init(), name=f"{name}_conv")]


def generator_filters(image_size: int, ngf: int = 64) -> list[int]:
    """Encoder widths: ngf doubling up to 8 * ngf, one layer per halving down to 1x1 (chapter "The generator")."""
    depth = math.log2(image_size) if image_size > 0 else -1
    if depth != int(depth) or depth < 3:
        raise ValueError(f"image_size must be a power of two of at least 8 (64, 128, 256, 512), not {image_size}")
    return [ngf * min(2**i, 8) for i in range(int(depth))]


def Generator(
    image_size: int = 256,
    ngf: int = 64,
    skips: bool = True,
    *,
    in_channels: int = 3,
    out_channels: int = 3,
    dropout: float = 0.5,
    bottleneck_norm: bool = False,
    out_activation: str = "tanh",
    upsample: str = "transpose",
    norm: str = "batch",
    name: str | None = None,
) -> keras.Model:
    """The paper's U-Net generator, or its encoder-decoder with `skips=False` (chapter "The generator").

    Encoder: C64-C128-C256-C512-C512-... down to 1x1, LeakyReLU(0.2), no BatchNorm on the first
    layer nor (unless `bottleneck_norm`, the TensorFlow tutorial's choice) on the 1x1 bottleneck.
    Decoder: ReLU, transposed convolutions, BatchNorm, dropout in the first three blocks; with
    skips, encoder layer i is concatenated to decoder layer n - i. The output is tanh in [-1, 1]
    (`out_activation="linear"` gives logits, as for the FCN-score segmenter).

    Two departures from the paper, for the chapter "Troubleshooting": `upsample="resize"` doubles
    the decoder's maps by nearest-neighbour resizing then a 3x3 convolution (against checkerboard
    artifacts), and `norm="instance"` normalises every image by itself whatever the batch size.
    """
    for option, value, choices in (("upsample", upsample, UPSAMPLES), ("norm", norm, NORMS)):
        if value not in choices:
            raise ValueError(f"unknown {option} {value!r}; choose one of {', '.join(choices)}")
    filters = generator_filters(image_size, ngf)
    depth = len(filters)
    inputs = keras.Input((image_size, image_size, in_channels), name="input_image")
    x = inputs
    encoded = []
    for i, width in enumerate(filters):
        if i > 0:
            x = layers.LeakyReLU(0.2, name=f"enc{i + 1}_lrelu")(x)
        x = layers.Conv2D(width, 4, 2, "same", use_bias=False, kernel_initializer=_init(), name=f"enc{i + 1}_conv")(x)
        innermost = i == depth - 1
        if 0 < i and (not innermost or bottleneck_norm):
            x = _norm(norm, f"enc{i + 1}")(x)
        encoded.append(x)
    for j, i in enumerate(reversed(range(depth - 1))):  # decoder block j brings the map to encoder i's size
        x = layers.ReLU(name=f"dec{j + 1}_relu")(x)
        for layer in _upsample(upsample, filters[i], f"dec{j + 1}"):
            x = layer(x)
        x = _norm(norm, f"dec{j + 1}")(x)
        if j < 3 and dropout:
            x = layers.Dropout(dropout, name=f"dec{j + 1}_dropout")(x)
        if skips:
            x = layers.Concatenate(name=f"dec{j + 1}_skip")([encoded[i], x])
    x = layers.ReLU(name="out_relu")(x)
    for layer in _upsample(upsample, out_channels, "out", use_bias=True):
        x = layer(x)
    outputs = layers.Activation(out_activation, dtype="float32", name=f"out_{out_activation}")(x)
    return keras.Model(inputs, outputs, name=name or ("unet" if skips else "encoder_decoder"))


class _Block(NamedTuple):
    """One PatchGAN layer: a convolution (with BatchNorm unless it is the first), then LeakyReLU(0.2)."""

    filters: int
    kernel: int
    stride: int
    batch_norm: bool


def Discriminator(
    image_size: int = 256,
    ndf: int = 64,
    n_layers: int = 3,
    *,
    in_channels: int = 6,
    name: str | None = None,
) -> keras.Model:
    """The PatchGAN discriminator: a map of real/fake logits, one per input patch (chapter "The PatchGAN discriminator").

    n_layers 0, 1, 3, 5 give the paper's 1x1 (PixelGAN), 16x16, 70x70 and 286x286 (ImageGAN)
    receptive fields. Input: the (input, target) pair concatenated on channels (6 channels),
    or the target alone (3) for the unconditional GAN. Output: logits (no sigmoid).
    """
    if n_layers < 0:
        raise ValueError(f"n_layers must be 0 (PixelGAN) or more, not {n_layers}")
    inputs = keras.Input((image_size, image_size, in_channels), name="pair")
    if n_layers == 0:  # PixelGAN: 1x1 convolutions only
        plan = [_Block(ndf, 1, 1, False), _Block(2 * ndf, 1, 1, True)]
        kernel, pad = 1, 0
    else:  # C64 (no BatchNorm), then stride-2 Ck doubling up to 8 * ndf, then one stride-1 Ck
        plan = [_Block(ndf, 4, 2, False)]
        plan += [_Block(ndf * min(2**n, 8), 4, 2, True) for n in range(1, n_layers)]
        plan += [_Block(ndf * min(2**n_layers, 8), 4, 1, True)]
        kernel, pad = 4, 1
    side = image_size
    for block in plan + [_Block(1, kernel, 1, False)]:
        side = (side + 2 * pad - block.kernel) // block.stride + 1
    if side < 1:
        raise ValueError(f"image_size {image_size} is too small for n_layers={n_layers}: use fewer layers")
    x = inputs
    for k, block in enumerate(plan):
        if pad:
            x = layers.ZeroPadding2D(pad, name=f"c{k + 1}_pad")(x)
        x = layers.Conv2D(block.filters, block.kernel, block.stride, use_bias=not block.batch_norm,
                          kernel_initializer=_init(), name=f"c{k + 1}_conv")(x)
        if block.batch_norm:
            x = _batch_norm(f"c{k + 1}_bn")(x)
        x = layers.LeakyReLU(0.2, name=f"c{k + 1}_lrelu")(x)
    if pad:
        x = layers.ZeroPadding2D(pad, name="out_pad")(x)
    x = layers.Conv2D(1, kernel, 1, use_bias=n_layers > 0, kernel_initializer=_init(), name="out_conv")(x)
    outputs = layers.Activation("linear", dtype="float32", name="logits")(x)
    return keras.Model(inputs, outputs, name=name or f"patchgan_{n_layers}")


def receptive_field(model: keras.Model) -> int:
    """The side, in input pixels, of the patch that one output unit sees (chapter "The PatchGAN discriminator").

    Computed from the geometry of the model's convolutions (kernel sizes and strides), from the
    output back to the input: r <- (r - 1) * stride + kernel.
    """
    field = 1
    for layer in reversed(model.layers):
        if isinstance(layer, layers.Conv2D):
            field = (field - 1) * layer.strides[0] + layer.kernel_size[0]
    return field
