"""The generator (U-Net or encoder-decoder) and PatchGAN of the paper's appendix 6.1.

Layer for layer and parameter for parameter these follow the paper and, where it is
silent, the official PyTorch code. Each model is built from small blocks (`downsample`,
`upsample`, `discriminator_block`) that also run on their own on a tensor. Explained in
the chapters "The generator" and "The PatchGAN discriminator".
"""

from __future__ import annotations

import math

import keras
from keras import layers


def _init():
    """Weights drawn from N(0, 0.02), as in the paper."""
    return keras.initializers.RandomNormal(0.0, 0.02)


#: How the generator's decoder doubles a map's size: a transposed convolution (the
#: paper's), or resize-then-convolve.
UPSAMPLES = ("transpose", "resize")

#: The generator's normalisation: BatchNorm (the paper's), or InstanceNorm (the official
#: code's `--norm instance`).
NORMS = ("batch", "instance")


def _norm(name: str, kind: str = "batch"):
    """BatchNorm as the official code sets it, or InstanceNorm."""
    if kind == "batch":  # momentum 0.1 in PyTorch's terms, eps 1e-5, gamma ~ N(1, 0.02)
        return layers.BatchNormalization(
            momentum=0.9, epsilon=1e-5,
            gamma_initializer=keras.initializers.RandomNormal(1.0, 0.02),
            name=f"{name}_bn")
    return layers.GroupNormalization(groups=-1, epsilon=1e-5, center=False,
                                     scale=False, name=f"{name}_in")  # no scale, offset


def downsample(x, filters: int, name: str, *, activation: bool = True,
               normalise: bool = True, norm: str = "batch"):
    """An encoder block, halving the map: LeakyReLU(0.2), 4x4 stride-2 conv, BatchNorm.

    Called on a real tensor it runs at once with new random weights, BatchNorm in
    inference mode.
    """
    if activation:  # not in the first block, which sees the image itself
        x = layers.LeakyReLU(0.2, name=f"{name}_lrelu")(x)
    x = layers.Conv2D(filters, 4, 2, "same", use_bias=False, kernel_initializer=_init(),
                      name=f"{name}_conv")(x)
    if normalise:  # not in the first block, nor in the 1x1 bottleneck
        x = _norm(name, norm)(x)
    return x


def upsample(x, filters: int, name: str, *, dropout: float = 0.0,
             normalise: bool = True, norm: str = "batch", kind: str = "transpose"):
    """A decoder block, doubling the map: ReLU, 4x4 transposed conv, BatchNorm, dropout.

    Called on a real tensor it runs at once with new random weights, BatchNorm in
    inference mode and no dropout.
    """
    use_bias = not normalise  # a bias only where no normalisation follows (the output)
    x = layers.ReLU(name=f"{name}_relu")(x)
    if kind == "transpose":  # the paper's
        x = layers.Conv2DTranspose(filters, 4, 2, "same", use_bias=use_bias,
                                   kernel_initializer=_init(), name=f"{name}_conv")(x)
    else:  # "resize" (chapter "Troubleshooting training"): nearest doubling, 3x3 conv
        x = layers.UpSampling2D(2, interpolation="nearest", name=f"{name}_resize")(x)
        x = layers.Conv2D(filters, 3, 1, "same", use_bias=use_bias,
                          kernel_initializer=_init(), name=f"{name}_conv")(x)
    if normalise:
        x = _norm(name, norm)(x)
    if dropout:
        x = layers.Dropout(dropout, name=f"{name}_dropout")(x)
    return x


def generator_filters(image_size: int, ngf: int = 64) -> list[int]:
    """Encoder widths: ngf doubling up to 8 * ngf, one layer per halving down to 1x1."""
    depth = math.log2(image_size) if image_size > 0 else -1
    if depth != int(depth) or depth < 3:
        raise ValueError("image_size must be a power of two of at least 8 "
                         f"(64, 128, 256, 512), not {image_size}")
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
    upsampling: str = "transpose",
    norm: str = "batch",
    name: str | None = None,
) -> keras.Model:
    """The paper's U-Net generator, or its encoder-decoder with `skips=False`.

    Encoder: C64-C128-C256-C512-C512-... down to 1x1, no BatchNorm on the first block
    nor (unless `bottleneck_norm`, the TensorFlow tutorial's choice) on the 1x1
    bottleneck. Decoder: dropout in its first three blocks; with skips, encoder block i
    is concatenated to decoder block n - i. The output is tanh in [-1, 1]
    (`out_activation="linear"` gives logits, as for the FCN-score segmenter).

    Two departures from the paper, for the chapter "Troubleshooting training":
    `upsampling="resize"` doubles the decoder's maps by nearest-neighbour resizing then
    a 3x3 convolution (against checkerboard artifacts), and `norm="instance"` normalises
    every image by itself whatever the batch size.
    """
    for option, value, choices in (("upsampling", upsampling, UPSAMPLES),
                                   ("norm", norm, NORMS)):
        if value not in choices:
            raise ValueError(f"unknown {option} {value!r}; "
                             f"choose one of {', '.join(choices)}")
    filters = generator_filters(image_size, ngf)  # 64, 128, 256 and five 512s at 256 px
    inputs = keras.Input((image_size, image_size, in_channels),
                         name="input_image")  # (batch, 256, 256, 3)
    # The encoder: enc1 (batch, 128, 128, 64), enc2 (batch, 64, 64, 128), ...,
    # enc8 (batch, 1, 1, 512)
    x, encoded = inputs, []
    for i, width in enumerate(filters):
        first, bottleneck = i == 0, i == len(filters) - 1
        x = downsample(x, width, f"enc{i + 1}", activation=not first,
                       normalise=not first and (not bottleneck or bottleneck_norm),
                       norm=norm)
        encoded.append(x)
    # The decoder, back up through the encoder's sizes: dec1 (batch, 2, 2, 512), ...,
    # dec7 (batch, 128, 128, 64), each concatenated with the encoder's output of its
    # size.
    for j, skip in enumerate(reversed(encoded[:-1])):  # enc7's output, ..., enc1's
        x = upsample(x, skip.shape[-1], f"dec{j + 1}",
                     dropout=dropout if j < 3 else 0.0, norm=norm, kind=upsampling)
        if skips:  # (batch, 2, 2, 512 + 512), ..., (batch, 128, 128, 64 + 64)
            x = layers.Concatenate(name=f"dec{j + 1}_skip")([skip, x])
    # The output: (batch, 256, 256, 3), by tanh in [-1, 1]
    x = upsample(x, out_channels, "out", normalise=False, kind=upsampling)
    outputs = layers.Activation(out_activation, dtype="float32",
                                name=f"out_{out_activation}")(x)
    return keras.Model(inputs, outputs,
                       name=name or ("unet" if skips else "encoder_decoder"))


def discriminator_block(x, filters: int, kernel: int, stride: int, name: str, *,
                        normalise: bool = True):
    """One PatchGAN layer Ck: a convolution, BatchNorm (else a bias), LeakyReLU(0.2).

    Called on a real tensor it runs at once with new random weights, BatchNorm in
    inference mode.
    """
    # padded by 1, as the official code does: its stride-1 layers take 1 off the side
    # (32 -> 31 -> 30)
    if kernel > 1:
        x = layers.ZeroPadding2D(1, name=f"{name}_pad")(x)
    x = layers.Conv2D(filters, kernel, stride, use_bias=not normalise,
                      kernel_initializer=_init(), name=f"{name}_conv")(x)
    if normalise:
        x = _norm(name)(x)
    return layers.LeakyReLU(0.2, name=f"{name}_lrelu")(x)


def Discriminator(
    image_size: int = 256,
    ndf: int = 64,
    n_layers: int = 3,
    *,
    in_channels: int = 6,
    name: str | None = None,
) -> keras.Model:
    """The PatchGAN discriminator: a map of real/fake logits, one per input patch.

    n_layers 0, 1, 3, 5 give the paper's 1x1 (PixelGAN), 16x16, 70x70 and 286x286
    (ImageGAN) receptive fields. Input: the (input, target) pair concatenated on
    channels (6 channels), or the target alone (3) for the unconditional GAN. Output:
    logits (no sigmoid).
    """
    if n_layers < 0:
        raise ValueError(f"n_layers must be 0 (PixelGAN) or more, not {n_layers}")
    if n_layers and image_size // 2**n_layers < 3:  # 2 stride-1 convs take 1 off each
        raise ValueError(f"image_size {image_size} is too small for "
                         f"n_layers={n_layers}: use fewer layers")
    inputs = keras.Input((image_size, image_size, in_channels),
                         name="pair")  # (batch, 256, 256, 6)
    if n_layers:  # n_layers=3, the paper's 70x70 at 256 px: C64-C128-C256-C512
        # C64: (batch, 128, 128, 64), no BatchNorm
        x = discriminator_block(inputs, ndf, 4, 2, "c1", normalise=False)
        # C128: (batch, 64, 64, 128), C256: (batch, 32, 32, 256); widths up to 8 * ndf
        for k in range(1, n_layers):
            x = discriminator_block(x, ndf * min(2**k, 8), 4, 2, f"c{k + 1}")
        # C512, stride 1: (batch, 31, 31, 512)
        x = discriminator_block(x, ndf * min(2**n_layers, 8), 4, 1, f"c{n_layers + 1}")
        x = layers.ZeroPadding2D(1, name="out_pad")(x)
        kernel = 4
    else:  # the PixelGAN: C64-C128 of 1x1 convolutions
        x = discriminator_block(inputs, ndf, 1, 1, "c1", normalise=False)
        x = discriminator_block(x, 2 * ndf, 1, 1, "c2")
        kernel = 1
    x = layers.Conv2D(1, kernel, 1, use_bias=n_layers > 0, kernel_initializer=_init(),
                      name="out_conv")(x)  # (batch, 30, 30, 1)
    outputs = layers.Activation("linear", dtype="float32", name="logits")(x)
    return keras.Model(inputs, outputs, name=name or f"patchgan_{n_layers}")


def receptive_field(model: keras.Model) -> int:
    """The side, in input pixels, of the patch that one output unit sees.

    Computed from the geometry of the model's convolutions (kernel sizes and strides),
    from the output back to the input: r <- (r - 1) * stride + kernel.
    """
    field = 1
    for layer in reversed(model.layers):
        if isinstance(layer, layers.Conv2D):
            field = (field - 1) * layer.strides[0] + layer.kernel_size[0]
    return field
