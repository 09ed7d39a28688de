"""Paired images: read A|B files, check them, jitter and mirror them, and feed them with tf.data (chapter "Data")."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import tensorflow as tf
from PIL import Image, ImageOps

from p2p.runtime.filecheck import DataError, decoding, image_files, listed

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")

#: What jitter resizes to before its random crop, as a fraction of the image size.
JITTER_SCALE = 286 / 256

#: The most memory `paired_dataset` spends caching a folder's pairs: about 4,400 pairs at 256 (6 x 286 x 286
#: uint8 bytes each; the released maps: 1,096). A folder that needs more is decoded on every pass.
CACHE_BUDGET = 2 * 1024**3


def list_pairs(path) -> list:
    """Check a dataset folder, of A|B files or of folders A/ and B/, and return its pairs, sorted (chapter "Data")."""
    # A/ and B/ is the layout the official combine script starts from; the tuple is what `split_folder` gives.
    if isinstance(path, tuple) or (Path(path, "A").is_dir() and Path(path, "B").is_dir()):
        a_dir, b_dir = path if isinstance(path, tuple) else (Path(path, "A"), Path(path, "B"))
        return _matched_pairs(Path(a_dir), Path(b_dir))
    files = image_files(path, IMAGE_SUFFIXES)
    for file in files:  # each decoded in full: a bad file stops the run before training starts, named
        check_pair_file(file)
    return files


def _matched_pairs(a_dir: Path, b_dir: Path) -> list[tuple[Path, Path]]:
    """The (A file, B file) pairs of two folders, matched by name and decoded in full; DataError naming unmatched names."""
    for folder, other in ((a_dir, b_dir), (b_dir, a_dir)):
        if other.is_dir() and not folder.is_dir():
            raise DataError(f"{folder}: no such folder, though {other} exists. Pairs kept in separate folders need "
                            f"both, A and B, holding files of the same names.")
    a_files, b_files = ({f.name: f for f in image_files(folder, IMAGE_SUFFIXES)} for folder in (a_dir, b_dir))
    for folder, other, missing in ((b_dir, a_dir, a_files.keys() - b_files), (a_dir, b_dir, b_files.keys() - a_files)):
        if missing:
            names = sorted(missing)
            raise DataError(f"{folder}: lacks {len(names)} of the files in {other} ({listed(names, 5)}). A pair is an A file "
                            "and a B file of the same name: add the missing halves, or remove the files that have none.")
    pairs = [(a_files[name], b_files[name]) for name in sorted(a_files)]
    for pair in pairs:
        for file in pair:
            _decode(file)
    return pairs


def fingerprint(pairs) -> str:
    """A short identity of a dataset's files: a hash of their names and sizes, the same wherever it lies (chapter "Data")."""
    files = [pair if isinstance(pair, tuple) else (pair,) for pair in pairs]
    listing = "".join(f"{Path(f[0]).name}:{':'.join(str(Path(half).stat().st_size) for half in f)}\n"
                      for f in sorted(files, key=lambda f: Path(f[0]).name))
    return hashlib.sha256(listing.encode()).hexdigest()[:16]


def split_folder(root, split: str):
    """Where a split of a dataset lies: root/split, (root/A/split, root/B/split), or else root itself (chapter "Data")."""
    root = Path(root)
    if (root / split).is_dir():
        return root / split
    halves = (root / "A" / split, root / "B" / split)
    return halves if any(half.is_dir() for half in halves) else root


def decode_rgb(file) -> np.ndarray:
    """Decode an image file as a uint8 (height, width, 3) RGB array, upright: the one way p2p reads images (chapter "Data")."""
    image = _decode(file)
    if image.mode == "RGB":
        return np.asarray(image)
    grey = np.clip(np.rint(np.asarray(image) / 257), 0, 255).astype(np.uint8)  # 16 bits: 65535 is 255
    return np.repeat(grey[..., None], 3, axis=-1)


def _decode(file) -> Image.Image:
    """Decode a file in full with PIL, upright, into RGB or a 16-bit grey mode; DataError naming the file if it cannot be used."""
    with decoding(file), Image.open(file) as image:  # decoding: checked first, PIL's failures a DataError
        image.load()
        ImageOps.exif_transpose(image, in_place=True)  # turned as its EXIF orientation says, as a photo viewer shows it
        sixteen_bits = image.mode == "I" or image.mode.startswith("I;16")
        return image if image.mode == "RGB" or sixteen_bits else image.convert("RGB")  # alpha dropped, as the official code


def check_pair_file(file) -> tuple[int, int]:
    """Decode one A|B image fully and return its (width, height); raise DataError if unusable (chapter "Data")."""
    width, height = _decode(file).size  # not decode_rgb: whether a file is usable is known before its pixels are copied
    if width % 2:
        raise DataError(
            f"{file}: width {width} is odd, so it cannot hold two halves A|B side by side. "
            f"Paired files are input and target concatenated horizontally (e.g. 512x256)."
        )
    return width, height


def load_image(file):
    """Read any image file as float32 RGB in [-1, 1], through `decode_rgb` (chapter "Data")."""
    return normalize(decode_rgb(file))


def check_direction(direction: str) -> None:
    """Raise ValueError unless direction is "AtoB" or "BtoA" (chapter "Data")."""
    if direction not in ("AtoB", "BtoA"):
        raise ValueError(f"direction must be 'AtoB' or 'BtoA', not {direction!r}")


def split_pair(image, direction: str = "BtoA"):
    """Split an A|B image into (input, target): BtoA takes the right half as input (chapter "Data")."""
    half = tf.shape(image)[1] // 2
    return _orient(image[:, :half], image[:, half:], direction)


def _orient(a, b, direction: str):
    """(input, target) from the halves A and B of a pair: BtoA takes B as input."""
    check_direction(direction)
    return (b, a) if direction == "BtoA" else (a, b)


def _read_halves(pair) -> tuple[np.ndarray, np.ndarray]:
    """Decode a pair, an A|B file or an (A file, B file) tuple, into its halves (A, B) as uint8 arrays."""
    if isinstance(pair, tuple):
        return decode_rgb(pair[0]), decode_rgb(pair[1])
    image = decode_rgb(pair)
    half = image.shape[1] // 2
    return image[:, :half], image[:, half:]


def load_pair(pair, direction: str = "BtoA"):
    """Read one pair (an A|B file, or an (A file, B file) tuple) as (input, target) float32 images in [-1, 1] (chapter "Data")."""
    input_image, target = _orient(*_read_halves(pair), direction)
    return normalize(input_image), normalize(target)


def normalize(image):
    """Map uint8 [0, 255] to float32 [-1, 1], the range of the generator's tanh (chapter "Data")."""
    return tf.cast(image, tf.float32) / 127.5 - 1.0


def to_uint8(image):
    """Map [-1, 1] back to uint8 [0, 255] for display and saving (chapter "Data")."""
    return tf.cast(tf.round(tf.clip_by_value((image + 1.0) * 127.5, 0.0, 255.0)), tf.uint8)


def resize(image, size: int):
    """Resize to size x size with bicubic interpolation, as the official code does (chapter "Data")."""
    if tuple(image.shape[-3:-1]) == (size, size):  # bicubic at scale 1 would give it back, at a cost
        return image
    return tf.clip_by_value(tf.image.resize(image, [size, size], method="bicubic", antialias=True), -1.0, 1.0)


def jitter(input_image, target, image_size: int, seed):
    """Random jitter and mirroring, identical for input and target (chapter "Data").

    Both halves are resized to 286/256 of image_size, cropped back at one random place and
    flipped together, so the pair stays aligned. `seed` is a shape-[2] stateless seed.
    """
    pair = resize(tf.concat([input_image, target], axis=-1), int(round(image_size * JITTER_SCALE)))
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    pair = tf.image.stateless_random_crop(pair, [image_size, image_size, 6], seed=crop_seed)
    pair = tf.image.stateless_random_flip_left_right(pair, seed=flip_seed)
    return pair[..., :3], pair[..., 3:]


def paired_dataset(
    path,
    *,
    image_size: int = 256,
    direction: str = "BtoA",
    jitter: bool = True,
    batch_size: int = 1,
    shuffle: bool = True,
    seed: int | None = None,
    cache: bool = True,
) -> tf.data.Dataset:
    """A tf.data pipeline of (input, target) batches in [-1, 1] from a dataset folder, checked first (chapter "Data")."""
    check_direction(direction)
    pairs = list_pairs(path)
    size = int(round(image_size * JITTER_SCALE)) if jitter else image_size  # each half, resized once to what jitter crops
    cached = cache and len(pairs) * size * size * 6 <= CACHE_BUDGET  # else decoded on every pass, the TF tutorial's way

    def read(index):
        halves = tf.numpy_function(lambda i: _orient(*_read_halves(pairs[i]), direction), [index], [tf.uint8, tf.uint8])
        return tuple(to_uint8(resize(normalize(tf.ensure_shape(half, [None, None, 3])), size)) for half in halves)

    dataset = tf.data.Dataset.range(len(pairs))
    if cached:
        dataset = dataset.map(read, num_parallel_calls=tf.data.AUTOTUNE).cache()
    if shuffle:  # cached, the buffer shares the cache's pairs; streamed, it holds indices, not images
        dataset = dataset.shuffle(len(pairs), seed=seed, reshuffle_each_iteration=True)
    if not cached:
        dataset = dataset.map(read, num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.map(lambda x, y: (normalize(x), normalize(y)), num_parallel_calls=tf.data.AUTOTUNE)
    if jitter:  # on pairs already at its size, jitter() only crops and flips
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        dataset = tf.data.Dataset.zip(dataset, seeds).map(
            lambda pair, s: _jitter_pair(pair, image_size, s), num_parallel_calls=tf.data.AUTOTUNE
        )
    return dataset.batch(batch_size, drop_remainder=shuffle).prefetch(tf.data.AUTOTUNE)


def example_batch(path, n: int = 4, *, image_size: int = 256, direction: str = "BtoA"):
    """The first n pairs of a folder as one (inputs, targets) batch, unjittered: fixed examples (chapter "Data")."""
    pairs = [load_pair(pair, direction) for pair in list_pairs(path)[:n]]
    inputs, targets = zip(*((resize(a, image_size), resize(b, image_size)) for a, b in pairs))  # any sizes make one batch
    return tf.stack(inputs), tf.stack(targets)


def _jitter_pair(pair, image_size, seed):
    """`jitter` on a (input, target) pair; in `paired_dataset` its argument `jitter` hides the function."""
    return jitter(pair[0], pair[1], image_size, seed)
