"""Evaluation: sharpness and colour spread, L1, PSNR and SSIM, and the paper's FCN-score on the procedural facades.

The FCN-score asks a segmentation network, trained on real photos only, to label generated
photos; the closer its labels are to the input label map, the more recognisable the generated
scene. Here the segmenter is the p2p U-Net with a 12-class head, trained on the procedural
facades' real photos. Explained in the chapter "Reproducing the paper".
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from p2p import data, losses
from p2p.inference import moving_statistics_kept
from p2p.lab import facades
from p2p.models import Generator

N_CLASSES = len(facades.CLASSES)


def image_metrics(outputs, targets) -> dict[str, float]:
    """Mean L1 (in [-1, 1] units), PSNR (dB) and SSIM of outputs against targets, via tf.image."""
    outputs, targets = tf.cast(outputs, tf.float32), tf.cast(targets, tf.float32)
    as_unit = lambda images: (images + 1.0) / 2.0
    return {
        "l1": float(tf.reduce_mean(tf.abs(outputs - targets))),
        "psnr": float(tf.reduce_mean(tf.image.psnr(as_unit(outputs), as_unit(targets), max_val=1.0))),
        "ssim": float(tf.reduce_mean(tf.image.ssim(as_unit(outputs), as_unit(targets), max_val=1.0))),
    }


def sharpness(images) -> float:
    """Mean absolute Laplacian response of [-1, 1] images, in grey: fine detail (chapter "The conditional GAN objective")."""
    images = tf.cast(images, tf.float32)
    kernel = tf.constant([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])[:, :, None, None]
    grey = tf.reduce_mean(images, axis=-1, keepdims=True)
    return float(tf.reduce_mean(tf.abs(tf.nn.conv2d(grey, kernel, 1, "VALID"))))


def colour_spread(images) -> float:
    """How much the mean colour varies across images, the spread of a one-to-many task (chapter "The conditional GAN objective").

    The standard deviation over images of each image's mean R, G and B, averaged over the three.
    """
    means = tf.reduce_mean(tf.cast(images, tf.float32), axis=[1, 2])  # (images, 3)
    return float(tf.reduce_mean(tf.math.reduce_std(means, axis=0)))


def colourfulness(images) -> float:
    """How far pixels are from grey, the colour L1 averages away (chapter "The conditional GAN objective").

    The mean absolute difference of R, G and B from their mean, over all pixels.
    """
    images = tf.cast(images, tf.float32)
    return float(tf.reduce_mean(tf.abs(images - tf.reduce_mean(images, axis=-1, keepdims=True))))


def window_contrast(photos, label_images) -> float:
    """How much darker photos are where their label maps have windows than where they have wall (chapter "The generator").

    Per image: mean brightness on "facade" pixels minus mean brightness on "window" pixels,
    divided by the image's brightness spread; averaged over images. Zero when the windows are
    not drawn where the label map puts them, as in one average facade for every input.
    """
    grey = tf.reduce_mean(tf.cast(photos, tf.float32), axis=-1)  # (images, height, width)
    classes = class_maps(label_images)
    window = tf.cast(classes == facades.CLASSES.index("window"), tf.float32)
    wall = tf.cast(classes == facades.CLASSES.index("facade"), tf.float32)
    mean_on = lambda mask: tf.reduce_sum(grey * mask, axis=[1, 2]) / tf.maximum(tf.reduce_sum(mask, axis=[1, 2]), 1.0)
    return float(tf.reduce_mean((mean_on(wall) - mean_on(window)) / (tf.math.reduce_std(grey, axis=[1, 2]) + 1e-6)))


def blur_measures(outputs, targets) -> dict[str, float]:
    """The book's measures of blur: sharpness, colour spread, colourfulness, L1 (chapter "The conditional GAN objective")."""
    return {"sharpness": sharpness(outputs), "colour_spread": colour_spread(outputs), "colourfulness": colourfulness(outputs),
            "l1": float(losses.l1_loss(targets, outputs))}


def checkerboard(images) -> float:
    """Mean amplitude of the two-pixel checkerboard pattern in [-1, 1] images (chapter "Troubleshooting training").

    Over every 2x2 block and channel, |x[0, 0] - x[0, 1] - x[1, 0] + x[1, 1]| / 4: the amplitude a
    for a pure checkerboard of +a and -a, zero for ramps and flat areas.
    """
    x = np.asarray(images, np.float32)
    x = x[:, : x.shape[1] // 2 * 2, : x.shape[2] // 2 * 2]
    return float(np.mean(np.abs(x[:, ::2, ::2] - x[:, ::2, 1::2] - x[:, 1::2, ::2] + x[:, 1::2, 1::2])) / 4)


def grid_noise(images, periods=(2, 4, 8)) -> float:
    """How strong a 2, 4 or 8 px grid is in [-1, 1] images: its spectral excess (chapter "The conditional GAN objective").

    A decoder's stride-2 upsampling can print a periodic grid on its outputs; photos have none. At the
    frequencies of those periods off both axes (axis-aligned structure, brick courses and window rows, lies
    on the axes), the mean power spectrum's excess over its four neighbours, as the amplitude it adds.
    """
    x = np.asarray(images, np.float32)
    height, width = x.shape[1:3]
    x = np.moveaxis(x, -1, 1).reshape(-1, height, width)  # every channel of every image
    power = np.mean(np.abs(np.fft.fft2(x - x.mean(axis=(1, 2), keepdims=True))) ** 2, axis=0)
    points = {(u, v) for p in periods
              for u in range(height // p, height, height // p) for v in range(width // p, width, width // p)}
    excess = sum(max(power[u, v] - np.mean([power[(u + a) % height, (v + b) % width]
                                            for a, b in ((1, 0), (-1, 0), (0, 1), (0, -1))]), 0.0) for u, v in points)
    return float(np.sqrt(excess) / (height * width))  # Parseval: the RMS of the grid's components


def flicker(frames, shift: int = 1) -> float:
    """Mean change between frames of a pan by `shift` pixels a frame, the motion undone (chapter "Troubleshooting your data")."""
    frames = np.asarray(frames, np.float32)
    return float(np.mean(np.abs(frames[1:, :, :frames.shape[2] - shift] - frames[:-1, :, shift:])))


def pixel_spread(draws) -> float:
    """Standard deviation of each pixel over several images of one scene, averaged (chapter "Troubleshooting training")."""
    return float(np.mean(np.std(np.asarray(draws, np.float32), axis=0)))


def label_colour_share(images, tolerance: float = 0.15) -> float:
    """Share of pixels within `tolerance` (per channel, [-1, 1] units) of a label colour (chapter "Troubleshooting your data")."""
    colours = tf.constant(facades.COLORS, tf.float32) / 127.5 - 1.0
    near = [tf.reduce_min(tf.reduce_max(tf.abs(tf.cast(image, tf.float32)[..., None, :] - colours), -1), -1) < tolerance
            for image in images]  # one image at a time: (height, width, 12, 3) floats each
    return float(tf.reduce_mean(tf.cast(tf.stack(near), tf.float32)))


def in_batches(generator, inputs, batch_size: int):
    """`generator(batch, training=True)` over consecutive batches, statistics pooled (chapter "Troubleshooting training").

    The generator's BatchNorm moving averages are left as they were.
    """
    with moving_statistics_kept(generator):
        return tf.concat([generator(inputs[i:i + batch_size], training=True) for i in range(0, len(inputs), batch_size)], 0)


def measured_receptive_field(model: keras.Model, seed: int = 0) -> tuple[int, int]:
    """Measure the receptive field with gradients (chapter "The PatchGAN discriminator").

    Returns the (height, width) of the box of input pixels whose gradient for the centre
    output unit is nonzero. The model runs in inference mode: in training mode BatchNorm's
    batch statistics would connect every input pixel to every output.
    """
    size, channels = model.input_shape[1], model.input_shape[-1]
    image = tf.random.stateless_uniform((1, size, size, channels), seed=[seed, 0],
                                        minval=-1, maxval=1)
    with tf.GradientTape() as tape:
        tape.watch(image)
        outputs = model(image, training=False)
        centre = outputs[0, outputs.shape[1] // 2, outputs.shape[2] // 2, 0]
    seen = np.argwhere(np.abs(tape.gradient(centre, image)[0].numpy()).sum(-1) > 0)
    height, width = seen.max(0) - seen.min(0) + 1
    return int(height), int(width)


def class_maps(label_images):
    """Class indices of label-map images in [-1, 1]: the nearest CMP colour, which undoes JPEG's drift."""
    colours = tf.constant(facades.COLORS, tf.float32) / 127.5 - 1.0  # (12, 3)
    distance = tf.reduce_sum(tf.square(label_images[..., None, :] - colours), axis=-1)
    return tf.argmin(distance, axis=-1, output_type=tf.int32)


def Segmenter(image_size: int, ngf: int = 16) -> keras.Model:
    """The FCN-score's segmenter: a p2p U-Net with 12 class logits per pixel and no dropout."""
    return Generator(image_size, ngf, out_channels=N_CLASSES, dropout=0.0, out_activation="linear", name="segmenter")


def train_segmenter(data_dir, image_size: int, *, steps: int = 1000, ngf: int = 16, batch_size: int = 4, seed: int = 0,
                    direction: str = "BtoA", verbose: int = 0) -> keras.Model:
    """Train the segmenter on the real photos of data_dir/train to predict their label maps (jittered pairs)."""

    keras.utils.set_random_seed(seed)
    pairs = data.paired_dataset(data.split_folder(data_dir, "train"), image_size=image_size, direction=direction,
                                batch_size=batch_size, seed=seed).repeat()
    photos_to_classes = pairs.map(lambda labels, photos: (photos, class_maps(labels)))
    segmenter = Segmenter(image_size, ngf)
    segmenter.compile(optimizer=keras.optimizers.Adam(1e-3),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=True)
    segmenter.fit(photos_to_classes, steps_per_epoch=steps, epochs=1, verbose=verbose, shuffle=False)
    return segmenter


def fcn_scores(segmenter, photos, label_images, batch_size: int = 16) -> dict[str, float]:
    """Per-pixel accuracy, per-class accuracy and class IoU of a segmenter's labels for photos (chapter "Reproducing the paper").

    Classes absent from both the truth and the prediction are left out of the class means.
    """
    truth = class_maps(label_images)
    predicted = tf.concat([tf.argmax(segmenter(photos[i:i + batch_size], training=False), axis=-1, output_type=tf.int32)
                           for i in range(0, len(photos), batch_size)], axis=0)
    confusion = tf.math.confusion_matrix(tf.reshape(truth, [-1]), tf.reshape(predicted, [-1]), N_CLASSES).numpy()
    hits, in_truth, in_prediction = np.diag(confusion), confusion.sum(1), confusion.sum(0)
    present = in_truth > 0
    union = in_truth + in_prediction - hits
    return {
        "per_pixel_acc": float(hits.sum() / confusion.sum()),
        "per_class_acc": float(np.mean(hits[present] / in_truth[present])),
        "class_iou": float(np.mean(hits[union > 0] / union[union > 0])),
    }
