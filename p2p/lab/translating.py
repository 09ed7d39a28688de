"""Translating image files at their own size, for `python -m p2p translate`: inputs, outputs and sizes checked first.

Every output is named and checked before the first is written: an input image is never replaced, an
existing file only with --overwrite and only if translate wrote it (its PNG text chunk `MARK`), and an
--out that cannot be written is refused. --out is held while the outputs are written (`writing_into`):
a second translate into it waits, then checks its outputs again. Each image is read whole; with
--pairs, as training reads a pair (`p2p.data.list_pairs`), its input side only. The generator is
fully convolutional, so `rebuilt` puts its weights on any size whose sides are multiples of
`size_multiple`: each image is padded up to one (its edges reflected), translated by
`p2p.inference.translate` (one image, dropout on, its own BatchNorm statistics) and cropped back.
Explained in the chapters "The training loop" (test time) and "Troubleshooting your data" (other sizes).
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
from keras import layers
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from p2p import data, inference, runs
from p2p.runtime.files import write_atomically

#: The most memory translate lets one image's activations take, in bytes, counted as if every layer's output
#: were kept at once (`activation_bytes`; the measured peak is about a third of it): 8 GiB. The paper's generator
#: (ngf 64) takes up to 1.1 kB a pixel, so a 5000x5000 photo (28 GiB) is refused, naming --size; the book
#: runs' (ngf 16) take 0.3 kB a pixel, and translate it whole.
MEMORY_LIMIT = 8 * 1024**3

#: The text chunk translate writes into each of its PNGs: an existing file is replaced (--overwrite) only if it holds it.
MARK = ("p2p", "written by python -m p2p translate")


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


def input_files(images, *, pairs: bool = False) -> list[tuple[Path, ...]]:
    """The inputs named on the command line (a folder: its images, sorted), each as its files (chapter "The training loop").

    Without `pairs` each is (image,), translated whole. With `pairs` each is a pair as training reads
    it (`p2p.data.list_pairs`): (A|B file,) or, from folders A/ and B/, (A file, B file); an A|B file
    of odd width is refused as training refuses it. A missing path, a folder without images, a file
    training would not read (another format, a macOS ._ file) are refused with a DataError naming them.
    """
    inputs = []
    for path in map(Path, images):
        if path.is_dir() and pairs:
            inputs += data.list_pairs(path)  # the listing and checks training uses
        elif path.is_dir():
            if (path / "A").is_dir() and (path / "B").is_dir():
                raise data.DataError(f"{path}: holds folders A/ and B/ of pairs; give --pairs to translate each pair's "
                                     "input side, or one of the folders to translate its images whole")
            inputs += [(file,) for file in data.image_files(path)]  # others skipped with a note, as in training
        elif not path.exists():
            raise data.DataError(f"{path}: no such file; give an image file (or a folder of them) that exists")
        elif path.name.startswith("._"):
            raise data.DataError(f"{path}: a macOS record of another file's attributes, not an image; give the image "
                                 f"itself ({path.with_name(path.name[2:])})")
        elif path.suffix.lower() not in data.IMAGE_SUFFIXES:
            raise data.DataError(f"{path}: a {path.suffix or 'suffix-less'} file; translate reads what training reads, "
                                 f"{', '.join(data.IMAGE_SUFFIXES)} files: convert it to PNG")
        else:
            if pairs:
                data.check_pair_file(path)
            inputs.append((path,))
    return inputs


def check_out_dir(out_dir) -> None:
    """Refuse an --out that is a file, cannot be written or lies in the shipped book runs: a ValueError naming it and the fix."""
    from p2p.lab import bookruns

    out_dir = Path(out_dir)
    bookruns.check_not_shipped(out_dir, "--out")
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

    `inputs` are image files or `input_files`' tuples (named by their first file). Inputs of the same
    name from different folders get numbered outputs (1.png, 1-2.png). An output that would replace
    an input image, or a file translate did not write (`written_by_translate`), is refused even with
    `overwrite`; an earlier output of translate is refused unless `overwrite`. Each refusal is a
    ValueError naming the file and the fix.
    """
    out_dir = Path(out_dir)
    inputs = [_files(item) for item in inputs]
    outputs = []
    for files in inputs:
        stem = files[0].stem
        path = out_dir / f"{stem}.png"
        for n in range(2, len(outputs) + 2):  # two inputs of the same name (a/1.jpg, b/1.jpg): 1.png, 1-2.png
            if path not in outputs:
                break
            path = out_dir / f"{stem}-{n}.png"
        outputs.append(path)
    identities = {_identity(file) for files in inputs for file in files}
    existing = [path for path in outputs if path.exists()]
    for path in existing:
        if _identity(path) in identities:
            raise ValueError(f"{path}: is an input image, which translate never replaces; give another --out")
        if path.is_dir():
            raise ValueError(f"{path}: is a folder, where translate would write an image; give another --out")
        if not written_by_translate(path):
            raise ValueError(f"{path}: exists, and translate did not write it (it replaces only its own outputs, with "
                             "--overwrite); give another --out, or move the file away")
    if existing and not overwrite:
        more = f" (and {len(existing) - 1} more of the outputs)" if len(existing) > 1 else ""
        raise ValueError(f"{existing[0]}: exists{more}; give another --out, or --overwrite to replace earlier outputs")
    return outputs


def written_by_translate(path) -> bool:
    """Whether `path` is a PNG translate wrote: a regular file holding its text chunk `MARK` (a FIFO is never opened)."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return False
        with Image.open(path, formats=["PNG"]) as image:  # reads the chunks before the pixels, where MARK is
            return image.info.get(MARK[0]) == MARK[1]
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):  # unreadable or not a PNG: not translate's
        return False


@contextlib.contextmanager
def writing_into(out_dir):
    """Hold the folder --out (created if missing) in the block: a second translate into it waits, said on stderr.

    The lock is the operating system's (flock) on the folder itself, released when the process ends,
    even killed; where there is none (Windows, some network filesystems), nothing is held.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
        folder = os.open(out_dir, os.O_RDONLY)
    except (ImportError, OSError):
        yield
        return
    try:
        try:
            fcntl.flock(folder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"{out_dir}: another translate is writing into it; waiting for it to finish", file=sys.stderr, flush=True)
            fcntl.flock(folder, fcntl.LOCK_EX)
        except OSError:  # a filesystem without locks
            pass
        yield
    finally:
        os.close(folder)  # and with it the lock


def _files(item) -> tuple[Path, ...]:
    """An input as the tuple of its files: an `input_files` tuple, or an image file."""
    return tuple(map(Path, item)) if isinstance(item, tuple) else (Path(item),)


def _identity(path: Path) -> tuple[int, int]:
    """The file a path names, through links: (device, inode)."""
    status = path.stat()
    return status.st_dev, status.st_ino


@dataclass(frozen=True)
class Job:
    """One image to translate: its files, output file, how it is read and the sizes it goes through."""

    files: tuple[Path, ...]  # the image; with `pair`, a pair as training reads it: (A|B file,) or (A file, B file)
    out: Path
    pair: bool  # a pair (--pairs): its input side is translated, as `direction` says
    direction: str  # the run's: "BtoA" takes B as the input
    read: tuple[int, int]  # (height, width) of the image (of its input side for a pair)
    size: tuple[int, int]  # translated at this size (read, or resized by --size), and written at it
    padded: tuple[int, int]  # the size the generator sees: `size` padded up to multiples of `size_multiple`

    @property
    def source(self) -> Path:
        """The file the input comes from: the image, the A|B file, or the input side's file of A/ and B/."""
        return self.files[-1 if self.direction == "BtoA" else 0]

    def describe(self) -> str:
        """One line saying how the image was read (whole, or which side of a pair) and what was done to it on its way."""
        side = self.direction[0]  # BtoA: B is the input
        if not self.pair:
            hint = " (an A|B pair? give --pairs to translate its input half)" if self.read[1] == 2 * self.read[0] else ""
            reading = f"the whole image, {_hw(self.read)}{hint}"
        elif len(self.files) == 1:
            reading = f"an A|B pair, its input half {side} (the run's direction {self.direction}), {_hw(self.read)}"
        else:
            reading = (f"{side} of the pair with {self.files[0 if side == 'B' else 1]}, the input (the run's direction "
                       f"{self.direction}), {_hw(self.read)}")
        steps = []
        if self.size != self.read:
            steps.append(f"resized from {_hw(self.read)} to {_hw(self.size)} (--size)")
        if self.padded != self.size:
            steps.append(f"padded from {_hw(self.size)} to {_hw(self.padded)} (edges reflected) for the generator, "
                         f"then cropped back to {_hw(self.size)}")
        return f"{self.source}: {reading}" + (f"; {', '.join(steps)}" if steps else "")


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


def plan(generator, inputs, outputs, *, size: int | None = None, memory_limit: int | None = None, pairs: bool = False,
         direction: str = "BtoA") -> list[Job]:
    """Decode each input, decide its sizes; refuse one too big for memory, naming --size (chapter "Troubleshooting your data").

    `inputs` are image files or `input_files`' tuples; with `pairs`, each is read as a pair, its input
    side (`direction`) translated.
    """
    memory_limit = MEMORY_LIMIT if memory_limit is None else memory_limit
    multiple, per_pixel = size_multiple(generator), activation_bytes(generator)
    jobs = []
    for files, out in zip(map(_files, inputs), outputs):
        source = files[-1 if direction == "BtoA" else 0]  # Job.source
        height, width = data.decode_rgb(source).shape[:2]  # a file that is not an image stops here, before any write
        read = (height, width // 2) if pairs and len(files) == 1 else (height, width)  # an A|B file: its half
        job = Job(files, Path(out), pairs, direction, read, resized_size(read, size),
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


def prepare(job: Job) -> np.ndarray:
    """The job's input as float32 in [-1, 1] (a pair's input side, read as training reads it), resized and padded."""
    import tensorflow as tf

    image = data.load_pair(job.files, job.direction)[0] if job.pair else data.load_image(job.files[0])
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


def translate_files(run_dir, images, out_dir, *, overwrite: bool = False, size: int | None = None,
                    pairs: bool = False) -> list[Path]:
    """Translate image files at their own size with a run's generator into OUT/<name>.png (chapter "The training loop").

    Folders give their image files, sorted. Each image is translated whole; with `pairs`, the inputs
    are pairs as training reads them (A|B files, or folders A/ and B/) and each one's input side, in
    the run's direction, is translated. A line on stderr says how each input was read. Every output is
    named and checked before the first is written: an input image is never replaced, an existing file
    only with `overwrite` and only if translate wrote it (inputs of the same name from different
    folders get numbered outputs, 1.png, 1-2.png); another translate into the same --out is waited for,
    and the outputs checked again. Each image is padded up to the sides the generator takes
    (`p2p.lab.translating`, chapter "Troubleshooting your data"), translated by
    `p2p.inference.translate` and cropped back; `size` first resizes its shorter side to that many
    pixels. An image too large for memory is refused, naming --size.
    """
    if size is not None and size < 1:
        raise ValueError(f"--size {size}: give the shorter side in pixels, 1 or more")
    inputs = input_files(images, pairs=pairs)
    check_out_dir(out_dir)
    outputs = output_paths(inputs, out_dir, overwrite=overwrite)
    generator, config = runs.load_generator(run_dir)
    jobs = plan(generator, inputs, outputs, size=size, pairs=pairs, direction=config.direction)  # no write yet
    generators = Generators(generator)
    mark = PngInfo()
    mark.add_text(*MARK)
    with writing_into(out_dir):
        output_paths(inputs, out_dir, overwrite=overwrite)  # again, --out held: another translate may have written
        for job in jobs:
            image = prepare(job)
            output = inference.translate(generators(*job.padded), image[None])[0]  # the paper's test time: one image
            (top, left), (height, width) = crop_offsets(job.size, job.padded), job.size
            pixels = np.asarray(data.to_uint8(output[top:top + height, left:left + width]))
            print(job.describe(), file=sys.stderr)
            try:
                write_atomically(job.out, functools.partial(Image.fromarray(pixels).save, format="PNG", pnginfo=mark))
            except OSError as err:  # checked above; the disk may still fill, or the folder change, under way
                raise ValueError(f"{job.out}: cannot be written ({err.strerror}); give another --out") from err
    return [job.out for job in jobs]
