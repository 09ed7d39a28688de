"""The procedural facades: a stand-in for the CMP facades data that needs no network.

Each building is a `Facade` layout (floors, windows, door, balconies, shop front, ...). Its
label map uses the 12 classes of the CMP Facade Database in a fixed colour coding; its photo is a
rendering whose materials, colours, lighting and texture are drawn per building and are *not*
in the label map, so one label map has many plausible photos, as with real facades.
Explained in the chapter "Data".
"""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter
from tqdm.auto import tqdm

from p2p.runtime.files import write_atomically

#: The 12 classes of the CMP Facade Database, in label order.
CLASSES = (
    "background", "facade", "window", "door", "cornice", "sill",
    "balcony", "blind", "deco", "molding", "pillar", "shop",
)

#: The colour of each class in the label maps (a 12-step jet colour map, as in the CMP data).
COLORS = np.array(
    [
        [0, 0, 170],      # background
        [0, 0, 255],      # facade
        [0, 85, 255],     # window
        [0, 170, 255],    # door
        [0, 255, 255],    # cornice
        [85, 255, 170],   # sill
        [170, 255, 85],   # balcony
        [255, 255, 0],    # blind
        [255, 170, 0],    # deco
        [255, 85, 0],     # molding
        [255, 0, 0],      # pillar
        [170, 0, 0],      # shop
    ],
    dtype=np.uint8,
)

#: Number of files in each split of the released facades data.
SPLITS = {"train": 400, "val": 100, "test": 106}

_CLASS = {name: index for index, name in enumerate(CLASSES)}


@dataclasses.dataclass(frozen=True)
class Facade:
    """The layout of one building front; all lengths are fractions of the image side."""

    floors: int = 4
    windows_per_floor: int = 4
    door: bool = True
    shop: bool = False
    balconies: tuple[int, ...] = ()  # floor numbers (0 = ground floor) with a balcony per window
    blinds: bool = False  # shutters beside the windows
    moldings: bool = False  # frames around the windows
    deco: bool = False  # ornaments above the windows
    pillars: bool = False  # pilasters at the building's corners
    cornices: bool = True  # a cornice under the roof and string courses between floors
    roof: float = 0.1  # height of the background above the building
    margin: float = 0.0  # width of the background at each side
    window_width: float = 0.5  # of a window bay
    window_height: float = 0.55  # of a floor


def random_facade(rng: np.random.Generator) -> Facade:
    """Draw a random building layout (chapter "Data")."""
    floors = int(rng.integers(3, 8))
    return Facade(
        floors=floors,
        windows_per_floor=int(rng.integers(2, 7)),
        door=bool(rng.random() < 0.8),
        shop=bool(rng.random() < 0.35),
        balconies=tuple(f for f in range(1, floors) if rng.random() < 0.3),
        blinds=bool(rng.random() < 0.4),
        moldings=bool(rng.random() < 0.5),
        deco=bool(rng.random() < 0.35),
        pillars=bool(rng.random() < 0.3),
        cornices=bool(rng.random() < 0.75),
        roof=float(rng.uniform(0.0, 0.2)),
        margin=float(rng.choice([0.0, 0.0, rng.uniform(0.02, 0.12)])),
        window_width=float(rng.uniform(0.35, 0.65)),
        window_height=float(rng.uniform(0.4, 0.65)),
    )


def label_map(facade: Facade, size: int = 256) -> np.ndarray:
    """Draw a layout as a (size, size) array of class indices (chapter "Data")."""
    labels = np.zeros((size, size), np.uint8)

    def box(name, y0, y1, x0, x1):
        y0, y1 = max(int(round(y0 * size)), 0), min(int(round(y1 * size)), size)
        x0, x1 = max(int(round(x0 * size)), 0), min(int(round(x1 * size)), size)
        labels[y0:y1, x0:x1] = _CLASS[name]

    left, right, top = facade.margin, 1.0 - facade.margin, facade.roof
    box("facade", top, 1.0, left, right)
    width = right - left
    floor_height = (1.0 - top) / facade.floors
    bay = width / facade.windows_per_floor
    if facade.pillars:
        pillar = min(0.04, bay * 0.2)
        box("pillar", top, 1.0, left, left + pillar)
        box("pillar", top, 1.0, right - pillar, right)
    if facade.cornices:
        box("cornice", top, top + 0.025, left, right)
    door_bay = facade.windows_per_floor // 2
    for floor in range(facade.floors):
        floor_bottom = 1.0 - floor * floor_height
        floor_top = floor_bottom - floor_height
        if facade.cornices and floor > 0:
            box("cornice", floor_bottom - 0.012, floor_bottom, left, right)
        if floor == 0 and facade.shop:
            box("shop", floor_top + 0.25 * floor_height, 1.0, left + 0.02, right - 0.02)
        for column in range(facade.windows_per_floor):
            centre = left + (column + 0.5) * bay
            half = 0.5 * bay * facade.window_width
            if floor == 0 and facade.door and column == door_bay:
                box("door", floor_top + 0.2 * floor_height, 1.0, centre - half, centre + half)
                continue
            if floor == 0 and facade.shop:
                continue
            y0 = floor_top + 0.5 * (1.0 - facade.window_height) * floor_height
            y1 = y0 + facade.window_height * floor_height
            if facade.moldings:
                frame = 0.012
                box("molding", y0 - frame, y1 + frame, centre - half - frame, centre + half + frame)
            if facade.deco:
                box("deco", y0 - 0.045, y0 - 0.015, centre - half, centre + half)
            if facade.blinds:
                box("blind", y0, y1, centre - 1.8 * half, centre + 1.8 * half)
            box("window", y0, y1, centre - half, centre + half)
            if floor in facade.balconies:
                box("balcony", y1 - 0.35 * (y1 - y0), y1 + 0.01, centre - 1.3 * half, centre + 1.3 * half)
            else:
                box("sill", y1, y1 + 0.015, centre - 1.15 * half, centre + 1.15 * half)
    return labels


def colorize(labels: np.ndarray) -> np.ndarray:
    """Turn class indices into the RGB label map of the CMP colour coding (chapter "Data")."""
    return COLORS[labels]


# Photo rendering -------------------------------------------------------------------------------
#
# A rendering draws, per building, everything a label map leaves open: the wall's material, colour
# and the *phase* of its courses, each window's panes, curtains, shutters and reflections, the
# spacing of railings and dentils, weathering streaks, light and noise. Fine structure therefore
# moves from one rendering to the next while the layout stays put, so the per-pixel median of many
# renderings of one label map is blurred (the chapter "The conditional GAN objective" measures it).

_WALLS = np.array(  # brick, sandstone, plaster tints, grey stone, painted
    [[150, 70, 50], [190, 150, 100], [225, 215, 190], [200, 190, 170], [130, 130, 125],
     [235, 200, 150], [170, 110, 80], [210, 220, 225], [180, 170, 120], [110, 90, 80]],
    dtype=np.float32,
)


def _smooth_noise(rng, size, cells):
    """Value noise in [-1, 1]: a coarse random grid upsampled smoothly to size x size."""
    grid = rng.uniform(0, 255, (cells, cells)).astype(np.uint8)
    image = Image.fromarray(grid).resize((size, size), Image.BICUBIC)
    return np.asarray(image, np.float32) / 127.5 - 1.0


def _hash(*values, salt=0.0):
    """A deterministic pseudo-random number in [0, 1) per element of the arrays `values`."""
    total = salt + sum(np.asarray(v, np.float64) * k for v, k in zip(values, (12.9898, 78.233, 37.719)))
    return np.modf(np.abs(np.sin(total)) * 43758.5453)[0]


def _runs(mask, axis):
    """For each pixel of a boolean mask, the first index and the length of its run of True along `axis`."""
    mask = np.moveaxis(mask, axis, -1)
    index = np.arange(mask.shape[-1])
    before = np.concatenate([np.zeros_like(mask[..., :1]), mask[..., :-1]], axis=-1)
    after = np.concatenate([mask[..., 1:], np.zeros_like(mask[..., :1])], axis=-1)
    first = np.maximum.accumulate(np.where(mask & ~before, index, 0), axis=-1)
    last = np.flip(np.minimum.accumulate(np.flip(np.where(mask & ~after, index, mask.shape[-1]), -1), axis=-1), -1)
    return np.moveaxis(first, -1, axis), np.moveaxis(last - first + 1, -1, axis)


def _courses(y, x, height, length, rng, joint):
    """Masonry in pixel units: (joint mask, block id) for courses of `height`, blocks of `length`, at a random phase."""
    y = y + rng.uniform(0, height)
    row = np.floor(y / height)
    x = x + rng.uniform(0, length) + (row % 2) * length * rng.uniform(0.35, 0.65)
    column = np.floor(x / length)
    mortar = (y % height < joint) | (x % length < joint)
    return mortar, row * 131.0 + column


def _wall_shading(y, x, size, rng):
    """A multiplicative texture for walls: brick, stone, boards or stucco, each at its own random phase."""
    kind = rng.integers(4)
    unit = size / 256  # lengths below are in pixels of a 256 image
    if kind == 0:  # brick: thin courses
        height = unit * rng.uniform(4.0, 7.0)
        mortar, block = _courses(y, x, height, height * rng.uniform(2.2, 3.2), rng, max(unit * 1.2, 0.8))
        shade = 1.0 + rng.uniform(0.2, 0.35) * (_hash(block, salt=rng.uniform(0, 100)) - 0.5) * 2
        return np.where(mortar, rng.choice([rng.uniform(0.5, 0.7), rng.uniform(1.25, 1.4)]), shade)
    if kind == 1:  # dressed stone: tall blocks, fine joints
        height = unit * rng.uniform(9.0, 16.0)
        joints, block = _courses(y, x, height, height * rng.uniform(1.5, 2.8), rng, max(unit * 1.5, 0.8))
        shade = 1.0 + rng.uniform(0.15, 0.3) * (_hash(block, salt=rng.uniform(0, 100)) - 0.5) * 2
        return np.where(joints, rng.uniform(0.5, 0.7), shade)
    if kind == 2:  # horizontal boards or rustication: a lit top edge and a shadowed bottom edge
        period = unit * rng.uniform(5.0, 10.0)
        phase = (y + rng.uniform(0, period)) % period / period
        return 1.0 + rng.uniform(0.2, 0.3) * np.where(phase < 0.2, 1.0, np.where(phase > 0.8, -1.5, 0.0))
    grain = _smooth_noise(rng, size, max(size // 2, 2))  # stucco: coarse grain and trowel marks
    return 1.0 + rng.uniform(0.15, 0.25) * grain


def _window_pattern(labels, y, x, palette, trim, rng):
    """Paint each window: panes and mullions, curtains, closed shutters and reflections, drawn per window."""
    size = labels.shape[0]
    glass = labels == _CLASS["window"]
    x0, width = _runs(glass, axis=1)
    y0, height = _runs(glass, axis=0)
    u = (x - x0) / np.maximum(width, 1)  # position inside the window, 0..1
    v = (y - y0) / np.maximum(height, 1)
    salt = rng.uniform(0, 100)
    window_id = x0 * 1.0 + y0 * 1000.0
    chance = lambda k: _hash(window_id, k, salt=salt)  # one random number per window, k-th draw

    colour = palette[_CLASS["window"]] * (0.6 + 0.8 * chance(1))[..., None]  # dark or lit interior
    reflect = (u + v * rng.uniform(0.3, 1.2) + rng.uniform(0, 1)) % rng.uniform(0.5, 1.2) < rng.uniform(0.1, 0.3)
    colour = colour + reflect[..., None] * rng.uniform(20, 70)
    curtain_side = chance(2) < 0.5
    curtain_depth = np.where(chance(3) < rng.uniform(0.2, 0.7), 0.2 + 0.5 * chance(4), 0.0)
    curtained = np.where(curtain_side, u < curtain_depth, u > 1 - curtain_depth)
    cloth = _jitter_colour(rng, np.array([225.0, 215, 195]), 25) * (1 + 0.15 * np.sin(u * rng.uniform(20, 45)))[..., None]
    colour = np.where(curtained[..., None], cloth, colour)
    bar = max(size / 256 * rng.uniform(1.0, 2.0), 0.7)  # glazing bars: a transom and mullions, placed per building
    transom = rng.uniform(0.2, 0.5) * height if rng.random() < 0.7 else -bar
    mullions = rng.integers(0, 3)
    offset = rng.uniform(-0.15, 0.15)
    mullion = np.abs(v * height - transom) < bar / 2
    for k in range(1, mullions + 1):
        mullion |= np.abs((u - k / (mullions + 1) - offset * (mullions == 1)) * width) < bar / 2
    colour = np.where(mullion[..., None], trim, colour)
    closed = chance(5) < rng.uniform(0.0, 0.4)  # shutters closed over this window: slats
    slat = max(size / 256 * rng.uniform(2.5, 4.0), 1.5)
    slats = palette[_CLASS["blind"]] * np.where(((y + rng.uniform(0, slat)) % slat) < slat * 0.35, 0.7, 1.0)[..., None]
    colour = np.where(closed[..., None], slats, colour)
    return glass, colour


def _jitter_colour(rng, colour, spread=20.0):
    """A colour moved by Gaussian noise of `spread` per channel, clipped to [0, 255]."""
    return np.clip(colour + rng.normal(0, spread, 3), 0, 255)


def render_photo(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Render a photo-like RGB image of a label map with a randomly drawn appearance (chapter "Data").

    Drawn from `rng`, none of it in the labels: the wall's material, colour and the phase of
    its courses; per window, its panes, curtains, closed shutters and reflections; the slats of
    shutters, the bars of railings, the panels of doors, dentils under cornices; weathering
    streaks; light direction and strength; noise.
    """
    size = labels.shape[0]
    unit = size / 256
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    is_ = lambda *names: np.isin(labels, [_CLASS[n] for n in names])

    wall = _jitter_colour(rng, _WALLS[rng.integers(len(_WALLS))], 15.0)
    trim = _jitter_colour(rng, np.array([235.0, 230, 220]) if rng.random() < 0.6 else wall * 0.8)
    paint = _jitter_colour(rng, rng.uniform(30, 200, 3), 10.0)
    palette = np.stack([
        _jitter_colour(rng, np.array([150.0, 180, 220]) if rng.random() < 0.6 else np.array([120.0, 115, 110]), 25),
        wall,                                                               # facade
        _jitter_colour(rng, rng.uniform(15, 70) * np.array([0.8, 0.9, 1.0]), 8.0),  # window glass
        paint * 0.7,                                                        # door
        trim,                                                               # cornice
        trim * 0.95,                                                        # sill
        _jitter_colour(rng, np.array([60.0, 60, 60]) if rng.random() < 0.5 else trim * 0.8),  # balcony
        paint,                                                              # blind
        trim * 0.9,                                                         # deco
        trim,                                                               # molding
        wall * rng.uniform(0.75, 1.1),                                      # pillar
        _jitter_colour(rng, rng.uniform(20, 90, 3), 10.0),                   # shop front
    ]).astype(np.float32)
    photo = palette[labels]

    walls = is_("facade", "pillar")
    photo[walls] *= _wall_shading(y, x, size, rng)[walls][:, None]
    glass, window_colour = _window_pattern(labels, y, x, palette, trim, rng)
    photo[glass] = window_colour[glass]

    def stripes(along, period, duty, phase=None):  # 1 on a fraction `duty` of each period, at a random phase
        phase = rng.uniform(0, period) if phase is None else phase
        return ((along + phase) % period) < period * duty

    slat = unit * rng.uniform(2.5, 4.5)  # open shutters beside the windows: horizontal slats
    photo[is_("blind")] *= np.where(stripes(y, slat, 0.35), 0.7, 1.0)[is_("blind")][:, None]
    railing = is_("balcony")  # balcony railings: vertical bars
    photo[railing] = np.where(stripes(x, unit * rng.uniform(4, 9), 0.4)[railing][:, None],
                              palette[_CLASS["balcony"]], photo[railing] * 0.55 + 20)
    dentils = is_("cornice", "deco")  # dentils and ornaments: small repeated blocks
    photo[dentils] *= np.where(stripes(x, unit * rng.uniform(4, 10), 0.5), 1.0, 0.7)[dentils][:, None]
    door = is_("door")  # door: vertical planks or panels
    photo[door] *= np.where(stripes(x, unit * rng.uniform(3, 12), 0.2), 0.65, 1.0)[door][:, None]
    shop = is_("shop")  # shop window: glass, mullions at a random spacing, goods behind
    photo[shop] *= np.where(stripes(x, unit * rng.uniform(15, 40), 0.12), 2.2, 1.0 + 0.5 * _hash(
        np.floor(x / (unit * 5)), np.floor(y / (unit * 7)), salt=rng.uniform(0, 100)))[shop][:, None]

    streaks = rng.integers(2, 14)  # weathering: dark streaks running down the wall from random places
    for _ in range(streaks):
        x_start, y_start = rng.uniform(0, size), rng.uniform(0, size * 0.8)
        width, length = unit * rng.uniform(1.5, 5), size * rng.uniform(0.1, 0.5)
        fade = np.clip(1 - (y - y_start) / length, 0, 1) * (np.abs(x - x_start) < width) * (y > y_start)
        photo[walls] *= (1 - rng.uniform(0.15, 0.35) * fade[walls])[:, None]
    photo *= (1.0 + rng.uniform(0.03, 0.12) * _smooth_noise(rng, size, 6))[..., None]  # large blotches

    projecting = is_("cornice", "sill", "balcony", "deco", "molding")
    drop = max(int(size * rng.uniform(0.004, 0.015)), 1)
    shadow = np.zeros_like(projecting)
    shadow[drop:] = projecting[:-drop] & ~projecting[drop:]
    photo[shadow] *= rng.uniform(0.45, 0.75)

    angle = rng.uniform(0, 2 * np.pi)
    light = 1.0 + rng.uniform(0.1, 0.4) * ((x / size - 0.5) * np.cos(angle) + (y / size - 0.5) * np.sin(angle))
    photo = photo * light[..., None] * rng.uniform(0.75, 1.15)
    # The photo is not the label map's exact projection: annotations are drawn by hand, so edges
    # sit up to a few pixels off their label boxes. A small random shift and scale per building.
    pad = int(np.ceil(0.03 * size)) + 1  # edge pixels repeated, so the shift brings nothing black in
    image = Image.fromarray(np.pad(np.clip(photo, 0, 255).astype(np.uint8), ((pad, pad), (pad, pad), (0, 0)), "edge"))
    scale, (dx, dy) = 1.0 + rng.uniform(-0.015, 0.015), rng.uniform(-0.012, 0.012, 2) * size
    origin = pad + size / 2 * (1 - scale)
    image = image.transform((size, size), Image.AFFINE, (scale, 0, origin + dx, 0, scale, origin + dy),
                            resample=Image.BILINEAR)
    photo = np.asarray(image, np.float32) + rng.normal(0, rng.uniform(2, 5), (size, size, 3))
    image = Image.fromarray(np.clip(photo, 0, 255).astype(np.uint8))
    return np.asarray(image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.6) * unit)))


def facade_pair(seed, size: int = 256) -> np.ndarray:
    """One (size, 2 * size, 3) A|B image: the photo left, the label map right (chapter "Data")."""
    rng = np.random.default_rng(seed)
    labels = label_map(random_facade(rng), size)
    return np.concatenate([render_photo(labels, rng), colorize(labels)], axis=1)


def make_facades(root, seed: int = 0, size: int = 256, progress: bool = True) -> Path:
    """Write the procedural facades as root/{train,val,test}/<n>.jpg in A|B format (chapter "Data").

    The same seed gives the same bytes. A folder already complete for this seed and size is
    left as it is, an interrupted one completed; any other folder with files in its train, val or
    test folders is refused (a user's dataset is never written over). Returns the root folder.
    """
    root = Path(root)
    stamp, settings = root / "facades.json", {"seed": seed, "size": size}
    if stamp.exists():
        try:
            saved = json.loads(stamp.read_text())
        except ValueError:
            saved = {}
        if {k: saved.get(k) for k in settings} != settings:
            raise ValueError(f"{root} holds the procedural facades of seed {saved.get('seed')} at {saved.get('size')} "
                             f"px: give another folder for seed {seed} at {size} px, or delete this one")
        if saved.get("complete", True):  # stamps from before "complete" were written last
            return root
    else:
        taken = [path for split in SPLITS if (root / split).is_dir() for path in sorted((root / split).iterdir())[:1]]
        if taken:
            raise ValueError(f"{root} already holds a dataset ({taken[0]}, ...) that p2p did not write: give a new or "
                             "empty folder for the procedural facades")
    root.mkdir(parents=True, exist_ok=True)
    write_atomically(stamp, lambda file: file.write(json.dumps({**settings, "complete": False}).encode()))
    jobs = [(split, n) for split, count in SPLITS.items() for n in range(1, count + 1)]
    for split in SPLITS:
        (root / split).mkdir(parents=True, exist_ok=True)
    for split, n in tqdm(jobs, desc="facades", unit="img", disable=not progress):
        pair = facade_pair((seed, list(SPLITS).index(split), n), size)
        path = root / split / f"{n}.jpg"
        # 4:4:4 chroma keeps the label colours
        save = functools.partial(Image.fromarray(pair).save, format="JPEG", quality=90, subsampling=0)
        write_atomically(path, save)  # an interrupted run leaves no truncated .jpg
    write_atomically(stamp, lambda file: file.write(json.dumps({**settings, "complete": True}).encode()))  # last
    return root
