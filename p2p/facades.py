"""The procedural facades: a stand-in for the CMP facades data that needs no network.

Each building is a `Facade` layout (floors, windows, door, balconies, shop front, ...). Its
label map uses the 12 classes of the CMP Facade Database in a fixed colour coding; its photo is a
rendering whose materials, colours, lighting and texture are drawn per building and are *not*
in the label map, so one label map has many plausible photos, as with real facades.
Explained in the chapter "Data".
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter
from tqdm.auto import tqdm

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


def render_photo(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Render a photo-like RGB image of a label map with a randomly drawn appearance (chapter "Data").

    Wall material and colour, glass, shutter and door paint, sky, light direction and
    strength, texture and weathering are all drawn from `rng`; none of them is in the labels.
    """
    size = labels.shape[0]
    jitter = lambda colour, spread=20.0: np.clip(colour + rng.normal(0, spread, 3), 0, 255)
    wall = jitter(_WALLS[rng.integers(len(_WALLS))], 15.0)
    trim = jitter(np.array([235.0, 230, 220]) if rng.random() < 0.6 else wall * 0.8)
    paint = jitter(rng.uniform(30, 200, 3), 10.0)
    palette = np.stack([
        jitter(np.array([150.0, 180, 220]) if rng.random() < 0.6 else np.array([120.0, 115, 110]), 25),
        wall,                                            # facade
        jitter(rng.uniform(15, 70) * np.array([0.8, 0.9, 1.0]), 8.0),  # window glass
        paint * 0.7,                                     # door
        trim,                                            # cornice
        trim * 0.95,                                     # sill
        jitter(np.array([60.0, 60, 60]) if rng.random() < 0.5 else trim * 0.8),  # balcony
        paint,                                           # blind
        trim * 0.9,                                      # deco
        trim,                                            # molding
        wall * rng.uniform(0.75, 1.1),                   # pillar
        jitter(rng.uniform(20, 90, 3), 10.0),            # shop front
    ]).astype(np.float32)
    photo = palette[labels]

    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    wall_like = np.isin(labels, (_CLASS["facade"], _CLASS["pillar"]))
    texture = rng.integers(3)
    if texture == 0:  # bricks: mortar lines, every other course shifted by half a brick
        course = max(size // rng.integers(40, 70), 2)
        row = (y * size // course).astype(int)
        brick = (x * size + (row % 2) * course * 1.5) // (course * 3)
        mortar = ((y * size) % course < 1) | ((x * size + (row % 2) * course * 1.5) % (course * 3) < 1)
        shade = 1.0 + 0.08 * np.sin(brick * 12.9898 + row * 78.233)
        photo[wall_like] *= (np.where(mortar, 0.8, shade)[wall_like])[:, None]
    elif texture == 1:  # stucco: fine grain
        grain = 1.0 + 0.06 * _smooth_noise(rng, size, size // 2)
        photo[wall_like] *= grain[wall_like][:, None]
    # weathering: large blotches everywhere
    photo *= (1.0 + rng.uniform(0.03, 0.12) * _smooth_noise(rng, size, 6))[..., None]

    glass = np.isin(labels, (_CLASS["window"], _CLASS["shop"]))
    reflection = rng.uniform(0.0, 80.0) * np.clip(1.0 - 2.0 * ((y * size * rng.uniform(2, 6)) % size) / size, 0, 1)
    photo[glass] += reflection[glass][:, None]

    projecting = np.isin(labels, [_CLASS[c] for c in ("cornice", "sill", "balcony", "deco", "molding")])
    drop = max(int(size * rng.uniform(0.004, 0.015)), 1)
    shadow = np.zeros_like(projecting)
    shadow[drop:] = projecting[:-drop] & ~projecting[drop:]
    photo[shadow] *= rng.uniform(0.45, 0.75)

    angle = rng.uniform(0, 2 * np.pi)
    light = 1.0 + rng.uniform(0.1, 0.4) * ((x - 0.5) * np.cos(angle) + (y - 0.5) * np.sin(angle))
    photo = photo * light[..., None] * rng.uniform(0.75, 1.15)
    photo += rng.normal(0, rng.uniform(2, 6), photo.shape)
    image = Image.fromarray(np.clip(photo, 0, 255).astype(np.uint8))
    return np.asarray(image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.9) * size / 256)))


def facade_pair(seed, size: int = 256) -> np.ndarray:
    """One (size, 2 * size, 3) A|B image: the photo left, the label map right (chapter "Data")."""
    rng = np.random.default_rng(seed)
    labels = label_map(random_facade(rng), size)
    return np.concatenate([render_photo(labels, rng), colorize(labels)], axis=1)


def make_facades(root, seed: int = 0, size: int = 256, progress: bool = True) -> Path:
    """Write the procedural facades as root/{train,val,test}/<n>.jpg in A|B format (chapter "Data").

    The same seed gives the same bytes. A folder already complete for this seed and size is
    left as it is. Returns the root folder.
    """
    root = Path(root)
    stamp, settings = root / "facades.json", json.dumps({"seed": seed, "size": size})
    if stamp.exists() and stamp.read_text() == settings:
        return root
    stamp.unlink(missing_ok=True)
    jobs = [(split, n) for split, count in SPLITS.items() for n in range(1, count + 1)]
    for split in SPLITS:
        (root / split).mkdir(parents=True, exist_ok=True)
    for split, n in tqdm(jobs, desc="facades", unit="img", disable=not progress):
        pair = facade_pair((seed, list(SPLITS).index(split), n), size)
        path = root / split / f"{n}.jpg"
        partial = path.with_suffix(".partial")  # an interrupted run leaves no truncated .jpg
        Image.fromarray(pair).save(partial, format="JPEG", quality=90, subsampling=0)  # 4:4:4 keeps label colours
        partial.replace(path)
    stamp.write_text(settings)  # written last: an interrupted run is redone
    return root
