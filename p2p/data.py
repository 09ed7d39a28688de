"""Paired images: read A|B files, check, jitter and mirror them, feed them with tf.data.

Explained in the chapter "Data". A pair is a tuple of its files: `(file,)` for an A|B
file, its halves side by side, or `(a_file, b_file)` for folders A/ and B/ of equally
named images.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf
from PIL import Image, ImageOps

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")

#: What jitter resizes to before its random crop, as a fraction of the image size.
JITTER_SCALE = 286 / 256

#: The most memory `paired_dataset` spends caching a folder's pairs: about 4,400 pairs
#: at 256 (6 x 286 x 286 uint8 bytes each). A folder that needs more is decoded on every
#: pass.
CACHE_BUDGET = 2 * 1024**3


class DataError(ValueError):
    """A dataset file or folder that cannot be used, named, with the fix."""


def list_pairs(path, n: int | None = None) -> list[tuple[Path, ...]]:
    """A dataset folder's pairs, sorted (the first `n`), each decoded whole to check it.

    The folder holds A|B files, or folders A/ and B/ (the layout the official combine
    script starts from); `split_folder` gives the latter as a tuple (A/split, B/split).
    """
    if isinstance(path, tuple) or (Path(path, "A").is_dir()
                                   and Path(path, "B").is_dir()):
        a_dir, b_dir = (path if isinstance(path, tuple)
                        else (Path(path, "A"), Path(path, "B")))
        pairs, check = _matched_pairs(Path(a_dir), Path(b_dir))[:n], _decode
    else:
        pairs, check = [(file,) for file in image_files(path)][:n], check_pair_file
    for pair in pairs:  # a bad file stops the run before training starts, named
        for file in pair:
            check(file)
    return pairs


def _matched_pairs(a_dir: Path, b_dir: Path) -> list[tuple[Path, Path]]:
    """Pair two folders' files by name: (A file, B file); DataError naming the rest."""
    for folder, other in ((a_dir, b_dir), (b_dir, a_dir)):
        if other.is_dir() and not folder.is_dir():
            raise DataError(f"{folder}: no such folder, though {other} exists. Pairs "
                            "kept in separate folders need both, A and B, holding "
                            "files of the same names.")
    a_files, b_files = ({f.name: f for f in image_files(folder)}
                        for folder in (a_dir, b_dir))
    for folder, other, missing in ((b_dir, a_dir, a_files.keys() - b_files),
                                   (a_dir, b_dir, b_files.keys() - a_files)):
        if missing:
            names = sorted(missing)
            raise DataError(f"{folder}: lacks {len(names)} of the files in {other} "
                            f"({listed(names, 5)}). A pair is an A file and a B file "
                            "of the same name: add the missing halves, or remove the "
                            "files that have none.")
    return [(a_files[name], b_files[name]) for name in sorted(a_files)]


def image_files(path) -> list[Path]:
    """A folder's image files, sorted, each checked; others skipped with a note.

    The one listing of image files: training's and translate's.
    """
    path = Path(path)
    if not path.is_dir():
        if path.exists():
            raise DataError(f"{path}: not a folder. Give the folder that holds the "
                            "pairs (A|B files, or folders A and B).")
        raise DataError(f"{path}: no such folder. Generate the procedural facades with "
                        "`python -m p2p facades DIR` or fetch a released dataset with "
                        "p2p.lab.datasets.download(name).")
    files, skipped = [], []
    for entry in path.iterdir():
        if entry.name.startswith("."):  # .DS_Store, macOS ._1.jpg, swap files: not data
            continue
        if entry.suffix.lower() in IMAGE_SUFFIXES:
            files.append(entry)
        elif not entry.is_dir():  # sub-folders: splits (train/, A/) or the user's own
            skipped.append(entry.name)
    files.sort()
    for file in files:  # all before any is opened: opening a FIFO waits for a writer
        check_file(file)
    skipped.sort()
    if not files:
        raise DataError(_no_images(path, skipped))
    if skipped:
        note = (f"{path}: skipped {len(skipped)} "
                f"file{'s' if len(skipped) > 1 else ''} of other formats "
                f"({listed(skipped, 3)}); only {', '.join(IMAGE_SUFFIXES)} files are "
                "read: convert any you meant to PNG.")
        if note not in _NOTED:
            _NOTED.add(note)
            print(note, file=sys.stderr, flush=True)
    return files


#: Notes on skipped files already printed: each once, though a run lists a folder twice.
_NOTED: set[str] = set()


def listed(names, shown: int) -> str:
    """The first `shown` names, comma-separated, and how many more."""
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def _no_images(path: Path, skipped: list[str]) -> str:
    """Why a folder gives no pairs: a lone A/ or B/, or no file of a suffix read."""
    for half, other in (("A", "B"), ("B", "A")):
        if (path / half).is_dir() and not (path / other).is_dir():
            entries = [p for p in (path / half).iterdir() if not p.name.startswith(".")]
            images = sum(p.suffix.lower() in IMAGE_SUFFIXES for p in entries)
            folders = sorted(p.name for p in entries if p.is_dir())
            holds = f"{images} image{'s' if images != 1 else ''}" + (
                f" and the folders {listed(folders, 3)}" if folders else "")
            return (f"{path}: {half}/ holds {holds}, but there is no {other}/ beside "
                    "it. Pairs are given as A|B files side by side in one folder, or "
                    "as folders A/ and B/ holding files of the same names.")
    message = f"{path}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder"
    if skipped:
        return (message + f"; skipped {len(skipped)} of other formats "
                f"({listed(skipped, 3)}): convert them to PNG to use them.")
    return message + "."


def check_file(file) -> None:
    """DataError, before opening, unless `file` is a regular file or a link to one."""
    try:
        mode = os.stat(file).st_mode
    except FileNotFoundError:
        if os.path.islink(file):
            raise DataError(
                f"{file}: a broken link, to {os.readlink(file)}, which does not "
                "exist; remove it from the data folder or restore what it points to."
            ) from None
        raise DataError(f"{file}: no such file. Check the path: give an existing image "
                        "file.") from None
    except OSError as err:  # a loop of links, a name too long
        raise DataError(f"{file}: cannot be read ({err.strerror}); remove it from the "
                        "data folder, or give an image file instead.") from err
    if stat.S_ISREG(mode):
        return
    if stat.S_ISDIR(mode):
        raise DataError(f"{file}: is a folder, not an image file. Give the image files "
                        f"in it (e.g. {Path(file) / '*.jpg'}), or rename it if it sits "
                        "in a data folder.")
    kinds = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))
    kind = next((name for test, name in kinds if test(mode)),
                "neither a file nor a folder")
    raise DataError(f"{file}: not a regular file ({kind}); remove it from the data "
                    "folder, or give an image file instead.")


@contextlib.contextmanager
def decoding(file):
    """Check `file`, then turn PIL's failures to decode it in the block to DataError."""
    check_file(file)
    try:
        yield
    except Image.DecompressionBombError as err:  # more pixels than PIL dares to decode
        raise DataError(f"{file}: too large to decode safely ({err}). A picture this "
                        "size is far beyond what pix2pix trains on: downscale it, or "
                        "remove it if it is not a photo.") from err
    except (OSError, SyntaxError, ValueError) as err:  # how PIL says "not an image"
        raise DataError(f"{file}: cannot be decoded as an image ({err}). Delete or "
                        "replace it.") from err


def fingerprint(pairs) -> str:
    """A short identity of a dataset's files, the same wherever it lies."""
    listing = "".join(
        f"{pair[0].name}:{':'.join(str(f.stat().st_size) for f in pair)}\n"
        for pair in sorted(pairs, key=lambda pair: pair[0].name))
    return hashlib.sha256(listing.encode()).hexdigest()[:16]


def split_folder(root, *splits: str):
    """Where the first of `splits` that a dataset has lies: root/split, or
    (root/A/split, root/B/split); else root itself (chapter "Data")."""
    root = Path(root)
    for split in splits:
        if (root / split).is_dir():
            return root / split
        halves = (root / "A" / split, root / "B" / split)
        if any(half.is_dir() for half in halves):
            return halves
    return root


def decode_rgb(file) -> np.ndarray:
    """Decode an image file as uint8 (height, width, 3) RGB, upright."""
    image = _decode(file)
    if image.mode == "RGB":
        return np.asarray(image)
    grey = np.clip(np.rint(np.asarray(image) / 257), 0, 255).astype(np.uint8)  # 16 bits
    return np.repeat(grey[..., None], 3, axis=-1)


def _decode(file) -> Image.Image:
    """Decode a file whole with PIL, upright, as RGB or 16-bit grey; else DataError."""
    with decoding(file), Image.open(file) as image:
        image.load()
        ImageOps.exif_transpose(image, in_place=True)  # as a photo viewer shows it
        sixteen_bits = image.mode == "I" or image.mode.startswith("I;16")
        if image.mode == "RGB" or sixteen_bits:
            return image
        return image.convert("RGB")  # alpha dropped, as the official code does


def check_pair_file(file) -> tuple[int, int]:
    """Decode one A|B image fully; its (width, height), or DataError if unusable."""
    width, height = _decode(file).size  # known usable before its pixels are copied
    if width % 2:
        raise DataError(
            f"{file}: width {width} is odd, so it cannot hold two halves A|B side by "
            f"side. Paired files are input and target concatenated horizontally "
            f"(e.g. 512x256)."
        )
    return width, height


def load_image(file):
    """Read any image file as float32 RGB in [-1, 1], through `decode_rgb`."""
    return normalize(decode_rgb(file))


def check_direction(direction: str) -> None:
    """Raise ValueError unless direction is "AtoB" or "BtoA" (chapter "Data")."""
    if direction not in ("AtoB", "BtoA"):
        raise ValueError(f"direction must be 'AtoB' or 'BtoA', not {direction!r}")


def split_pair(image, direction: str = "BtoA"):
    """Split an A|B image into (input, target): BtoA takes the right half as input."""
    half = tf.shape(image)[1] // 2
    return _orient(image[:, :half], image[:, half:], direction)


def _orient(a, b, direction: str):
    """(input, target) from the halves A and B of a pair: BtoA takes B as input."""
    check_direction(direction)
    return (b, a) if direction == "BtoA" else (a, b)


def _read_halves(pair) -> tuple[np.ndarray, np.ndarray]:
    """Decode a pair's files into its halves (A, B) as uint8 arrays."""
    images = [decode_rgb(file) for file in pair]
    if len(images) == 2:  # (A file, B file)
        return images[0], images[1]
    half = images[0].shape[1] // 2  # an A|B file
    return images[0][:, :half], images[0][:, half:]


def load_pair(pair, direction: str = "BtoA"):
    """Read one pair as (input, target) float32 images in [-1, 1] (chapter "Data")."""
    input_image, target = _orient(*_read_halves(pair), direction)
    return normalize(input_image), normalize(target)


def normalize(image):
    """Map uint8 [0, 255] to float32 [-1, 1], the range of G's tanh (chapter "Data")."""
    return tf.cast(image, tf.float32) / 127.5 - 1.0


def to_uint8(image):
    """Map [-1, 1] back to uint8 [0, 255] for display and saving (chapter "Data")."""
    return tf.cast(tf.round(tf.clip_by_value((image + 1.0) * 127.5, 0.0, 255.0)),
                   tf.uint8)


def resize(image, size: int):
    """Resize to size x size, bicubic as the official code (chapter "Data")."""
    if tuple(image.shape[-3:-1]) == (size, size):  # bicubic at scale 1 gives it back
        return image
    resized = tf.image.resize(image, [size, size], method="bicubic", antialias=True)
    return tf.clip_by_value(resized, -1.0, 1.0)


def jitter(input_image, target, image_size: int, seed):
    """Random jitter and mirroring, identical for input and target (chapter "Data").

    Both halves are resized to 286/256 of image_size, cropped back at one random place
    and flipped together, so the pair stays aligned. `seed` is a shape-[2] stateless
    seed.
    """
    pair = resize(tf.concat([input_image, target], axis=-1),
                  int(round(image_size * JITTER_SCALE)))
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    pair = tf.image.stateless_random_crop(pair, [image_size, image_size, 6],
                                          seed=crop_seed)
    pair = tf.image.stateless_random_flip_left_right(pair, seed=flip_seed)
    return pair[..., :3], pair[..., 3:]


def paired_dataset(
    path,
    *,
    image_size: int = 256,
    direction: str = "BtoA",
    augment: bool = True,
    batch_size: int = 1,
    shuffle: bool = True,
    seed: int | None = None,
    cache: bool = True,
) -> tf.data.Dataset:
    """(input, target) batches in [-1, 1] from a dataset folder, checked first, or from
    the pairs `list_pairs` gave (checked already).

    `augment`: random jitter and mirroring (`jitter`), the paper's augmentation.
    """
    check_direction(direction)
    pairs = path if isinstance(path, list) else list_pairs(path)
    # resized once, then cached (within CACHE_BUDGET) or else decoded on every pass
    size = int(round(image_size * JITTER_SCALE)) if augment else image_size
    cached = cache and len(pairs) * size * size * 6 <= CACHE_BUDGET

    def read(index):
        halves = tf.numpy_function(
            lambda i: _orient(*_read_halves(pairs[i]), direction),
            [index], [tf.uint8, tf.uint8])
        return tuple(
            to_uint8(resize(normalize(tf.ensure_shape(half, [None, None, 3])), size))
            for half in halves)

    dataset = tf.data.Dataset.range(len(pairs))
    if cached:
        dataset = dataset.map(read, num_parallel_calls=tf.data.AUTOTUNE).cache()
    if shuffle:  # cached: the buffer shares the cache's pairs; streamed: indices
        dataset = dataset.shuffle(len(pairs), seed=seed, reshuffle_each_iteration=True)
    if not cached:
        dataset = dataset.map(read, num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.map(lambda x, y: (normalize(x), normalize(y)),
                          num_parallel_calls=tf.data.AUTOTUNE)
    if augment:  # on pairs already at its size, jitter() only crops and flips
        seeds = tf.data.Dataset.random(seed=seed,
                                       rerandomize_each_iteration=True).batch(2)
        dataset = tf.data.Dataset.zip(dataset, seeds).map(
            lambda pair, s: jitter(*pair, image_size, s),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    return dataset.batch(batch_size, drop_remainder=shuffle).prefetch(tf.data.AUTOTUNE)


def example_batch(path, n: int = 4, *, image_size: int = 256, direction: str = "BtoA"):
    """The first n pairs of a folder as one unjittered (inputs, targets) batch."""
    pairs = [load_pair(pair, direction) for pair in list_pairs(path, n)]
    inputs, targets = zip(*((resize(a, image_size), resize(b, image_size))
                            for a, b in pairs))
    return tf.stack(inputs), tf.stack(targets)
