"""Translating image files at their own size, for `python -m p2p translate`: inputs, outputs and sizes checked first.

Every output is named and checked before the first is written: an input image is never replaced, an
existing file only with --overwrite, and an --out that cannot be written is refused. The generator is
fully convolutional, so `rebuilt` puts its weights on any size whose sides are multiples of
`size_multiple`: each image is padded up to one (its edges reflected), translated by
`p2p.inference.translate` (one image, dropout on, its own BatchNorm statistics) and cropped back.
Explained in the chapters "The training loop" (test time) and "Troubleshooting your data" (other sizes).
"""

from __future__ import annotations

import functools
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
from keras import layers
from PIL import Image

from p2p import data, inference, runs
from p2p.runtime.files import write_atomically

#: The most memory translate lets one image's activations take, in bytes, counted as if every layer's output
#: were kept at once (`activation_bytes`; the measured peak is about a third of it): 8 GiB. The paper's generator
#: (ngf 64) takes up to 1.1 kB a pixel, so a 5000x5000 photo (28 GiB) is refused, naming --size; the book
#: runs' (ngf 16) take 0.3 kB a pixel, and translate it whole.
MEMORY_LIMIT = 8 * 1024**3


def size_multiple(generator) -> int:
    """What each side of a generator's input must divide by: 2 ** its encoder layers (chapter "Troubleshooting your data")."""
    return math.prod(layer.strides[0] for layer in generator.layers if isinstance(layer, layers.Conv2D))


def rebuilt(generator, height: int | None = None, width: int | None = None, *, dropout: bool = True) -> keras.Model:
    """The generator's layers and weights on other input sizes, without dropout if asked (chapter "Troubleshooting your data").

    Every layer is a convolution, a normalisation or elementwise, so the same weights apply to any
    size whose sides are multiples of `size_multiple(generator)`; the bottleneck is then larger
    than 1x1. This is how the paper applies a generator trained at 256x256 to 512x512 maps.
    """
    height, width = height or generator.input_shape[1], width or generator.input_shape[2]
    multiple = size_multiple(generator)
    if height % multiple or width % multiple:
        fit = lambda side: max(round(side / multiple), 1) * multiple
        raise ValueError(f"a {height}x{width} input does not fit this generator: its encoder halves the image "
                         f"{int(math.log2(multiple))} times, so both sides must be multiples of {multiple}. "
                         f"Resize, pad or crop the image to {fit(height)}x{fit(width)}.")

    def clone(layer):
        if isinstance(layer, layers.Dropout) and not dropout:
            return layers.Dropout(0.0, name=layer.name)
        return layer.__class__.from_config(layer.get_config())

    model = keras.models.clone_model(generator, input_tensors=keras.Input((height, width, generator.input_shape[-1])),
                                     clone_function=clone)
    model.set_weights(generator.get_weights())
    return model


def input_files(images) -> list[Path]:
    """The image files named on the command line, a folder's image files (sorted) in its place (chapter "The training loop").

    A missing path, or a folder without images, is refused with a DataError naming it.
    """
    files = []
    for path in map(Path, images):
        if path.is_dir():
            files += data.image_files(path)  # the listing training uses: checked, others skipped with a note
        elif path.exists():
            files.append(path)
        else:
            raise data.DataError(f"{path}: no such file; give an image file (or a folder of them) that exists")
    return files


def check_out_dir(out_dir) -> None:
    """Refuse an --out that is a file or cannot be written: a ValueError naming it and the fix (chapter "The training loop")."""
    out_dir = Path(out_dir)
    existing = out_dir
    while not existing.exists() and existing != existing.parent:  # the folder itself, or where it would be created
        existing = existing.parent
    if not existing.is_dir():
        where = "is a file" if existing == out_dir else f"lies under {existing}, a file"
        raise ValueError(f"{out_dir}: {where}, not a folder; give --out a folder (one that does not exist is created)")
    if not os.access(existing, os.W_OK | os.X_OK):
        read_only = hasattr(os, "statvfs") and os.statvfs(existing).f_flag & os.ST_RDONLY
        why = "is on a read-only filesystem" if read_only else "cannot be written (permission denied)"
        where = "" if existing == out_dir else f" ({existing}, where it would be created)"
        raise ValueError(f"{out_dir}{where}: {why}; give another --out")


def output_paths(inputs, out_dir, *, overwrite: bool = False) -> list[Path]:
    """OUT/<name>.png for each input, checked before anything is written (chapter "The training loop").

    Inputs of the same name from different folders get numbered outputs (1.png, 1-2.png). An output
    that would replace an input image is refused even with `overwrite`; an existing file is refused
    unless `overwrite`. Each refusal is a ValueError naming the file and the fix.
    """
    out_dir = Path(out_dir)
    outputs = []
    for image_path in map(Path, inputs):
        path = out_dir / f"{image_path.stem}.png"
        for n in range(2, len(outputs) + 2):  # two inputs of the same name (a/1.jpg, b/1.jpg): 1.png, 1-2.png
            if path not in outputs:
                break
            path = out_dir / f"{image_path.stem}-{n}.png"
        outputs.append(path)
    identities = {_identity(path) for path in map(Path, inputs)}
    existing = [path for path in outputs if path.exists()]
    for path in existing:
        if _identity(path) in identities:
            raise ValueError(f"{path}: is an input image, which translate never replaces; give another --out")
        if path.is_dir():
            raise ValueError(f"{path}: is a folder, where translate would write an image; give another --out")
    if existing and not overwrite:
        more = f" (and {len(existing) - 1} more of the outputs)" if len(existing) > 1 else ""
        raise ValueError(f"{existing[0]}: exists{more}; give another --out, or --overwrite to replace earlier outputs")
    return outputs


def _identity(path: Path) -> tuple[int, int]:
    """The file a path names, through links: (device, inode)."""
    status = path.stat()
    return status.st_dev, status.st_ino


@dataclass(frozen=True)
class Job:
    """One image to translate: its file, output file, and the sizes it goes through."""

    source: Path
    out: Path
    pair: bool  # an A|B file: its input half is translated
    read: tuple[int, int]  # (height, width) of the image (of its input half for a pair)
    size: tuple[int, int]  # translated at this size (read, or resized by --size), and written at it
    padded: tuple[int, int]  # the size the generator sees: `size` padded up to multiples of `size_multiple`

    def describe(self) -> str | None:
        """One line saying what was done to the image on its way, or None when it went through as it was."""
        steps = []
        if self.size != self.read:
            steps.append(f"resized from {_hw(self.read)} to {_hw(self.size)} (--size)")
        if self.padded != self.size:
            steps.append(f"padded from {_hw(self.size)} to {_hw(self.padded)} (edges reflected) for the generator, "
                         f"then cropped back to {_hw(self.size)}")
        return f"{self.source}: {', '.join(steps)}" if steps else None


def _hw(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def activation_bytes(generator) -> float:
    """The most memory the generator's activations take per input pixel, in bytes: every layer's float32 output kept."""
    trained = generator.input_shape[1] * generator.input_shape[2]
    return 4 * sum(math.prod(layer.output.shape[1:]) for layer in generator.layers) / trained


def padded_size(size: tuple[int, int], multiple: int) -> tuple[int, int]:
    """Each side rounded up to a multiple of `multiple`."""
    return tuple(-(-side // multiple) * multiple for side in size)


def resized_size(size: tuple[int, int], shorter: int | None) -> tuple[int, int]:
    """(height, width) scaled so that the shorter side is `shorter`, the aspect ratio kept; `size` itself without one."""
    if shorter is None:
        return size
    scale = shorter / min(size)
    return tuple(max(1, round(side * scale)) for side in size)


def plan(generator, inputs, outputs, *, size: int | None = None, memory_limit: int | None = None) -> list[Job]:
    """Decode each input, decide its sizes; refuse one too big for memory, naming --size (chapter "Troubleshooting your data")."""
    memory_limit = MEMORY_LIMIT if memory_limit is None else memory_limit
    multiple, per_pixel = size_multiple(generator), activation_bytes(generator)
    jobs = []
    for source, out in zip(inputs, outputs):
        height, width = data.decode_rgb(source).shape[:2]  # a file that is not an image stops here, before any write
        pair = width == 2 * height
        read = (height, width // 2) if pair else (height, width)
        job = Job(Path(source), Path(out), pair, read, resized_size(read, size),
                  padded_size(resized_size(read, size), multiple))
        needed = per_pixel * math.prod(job.padded)
        if needed > memory_limit:
            fits = next((n for n in range(min(read), 0, -1)
                         if per_pixel * math.prod(padded_size(resized_size(read, n), multiple)) <= memory_limit), None)
            fix = (f"give --size N to translate it with its shorter side N pixels (up to {fits} fits)" if fits
                   else "crop it into smaller pieces")
            raise ValueError(f"{source}: {_hw(job.size)} (padded to {_hw(job.padded)}) would take up to "
                             f"{needed / 1024**3:.1f} GiB for this generator, over translate's limit of "
                             f"{memory_limit / 1024**3:.1f} GiB; {fix}")
        jobs.append(job)
    return jobs


def prepare(job: Job, direction: str) -> np.ndarray:
    """The job's input as float32 in [-1, 1], its input half for a pair, resized and padded to `job.padded`."""
    import tensorflow as tf

    image = data.load_image(job.source)
    if job.pair:
        image, _ = data.split_pair(image, direction)
    if job.size != job.read:
        image = tf.clip_by_value(tf.image.resize(image, job.size, method="bicubic", antialias=True), -1.0, 1.0)
    return pad(np.asarray(image, np.float32), job.padded)


def pad(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """An (height, width, channels) image padded to `size`, evenly on each side, its edges reflected."""
    (top, left), (height, width) = crop_offsets(image.shape[:2], size), size
    widths = ((top, height - image.shape[0] - top), (left, width - image.shape[1] - left), (0, 0))
    return np.pad(image, widths, mode="reflect" if min(image.shape[:2]) > 1 else "edge")


def crop_offsets(size: tuple[int, int], padded: tuple[int, int]) -> tuple[int, int]:
    """Where an image of `size` lies in itself padded by `pad` to `padded`: (top, left)."""
    return (padded[0] - size[0]) // 2, (padded[1] - size[1]) // 2


class Generators:
    """The generator on each size it is asked for, each rebuilt once (rebuilding and tracing take seconds)."""

    def __init__(self, generator):
        self.generator = generator
        self.models = {tuple(generator.input_shape[1:3]): generator}

    def __call__(self, height: int, width: int) -> keras.Model:
        """The generator's weights on height x width inputs, rebuilt the first time this size is asked for."""
        if (height, width) not in self.models:
            self.models[(height, width)] = rebuilt(self.generator, height, width)
        return self.models[(height, width)]


def translate_files(run_dir, images, out_dir, *, overwrite: bool = False, size: int | None = None) -> list[Path]:
    """Translate image files at their own size with a run's generator into OUT/<name>.png (chapter "The training loop").

    Folders give their image files, sorted. A file twice as wide as high is taken for an A|B pair and
    its input half is used. Every output is named and checked before the first is written: an input
    image is never replaced, an existing file only with `overwrite` (inputs of the same name from
    different folders get numbered outputs, 1.png, 1-2.png). Each image is padded up to the sides the
    generator takes (`p2p.lab.translating`, chapter "Troubleshooting your data"), translated by
    `p2p.inference.translate` and cropped back, a line on stderr saying so; `size` first resizes its
    shorter side to that many pixels. An image too large for memory is refused, naming --size.
    """
    if size is not None and size < 1:
        raise ValueError(f"--size {size}: give the shorter side in pixels, 1 or more")
    inputs = input_files(images)
    check_out_dir(out_dir)
    outputs = output_paths(inputs, out_dir, overwrite=overwrite)
    generator, config = runs.load_generator(run_dir)
    jobs = plan(generator, inputs, outputs, size=size)  # every input decoded and sized: no write yet
    generators = Generators(generator)
    for job in jobs:
        image = prepare(job, config.direction)
        output = inference.translate(generators(*job.padded), image[None])[0]  # the paper's test time: one image, dropout on
        (top, left), (height, width) = crop_offsets(job.size, job.padded), job.size
        pixels = np.asarray(data.to_uint8(output[top:top + height, left:left + width]))
        if job.describe():
            print(job.describe(), file=sys.stderr)
        try:
            write_atomically(job.out, functools.partial(Image.fromarray(pixels).save, format="PNG"))
        except OSError as err:  # checked above; the disk may still fill, or the folder change, under way
            raise ValueError(f"{job.out}: cannot be written ({err.strerror}); give another --out") from err
    return [job.out for job in jobs]
