"""The procedural facades: format, splits, determinism, and a one-to-many label-to-photo mapping."""

import hashlib

import numpy as np
import pytest
from PIL import Image

from p2p import data
from p2p.__main__ import main
from p2p.lab import evaluate, facades


def _digest(root):
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*.jpg"))}


def test_splits_and_file_format(facades_root):
    for split, count in facades.SPLITS.items():
        files = sorted((facades_root / split).glob("*.jpg"))
        assert len(files) == count == len(list((facades_root / split).iterdir()))
        assert {f.name for f in files} == {f"{n}.jpg" for n in range(1, count + 1)}
    with Image.open(facades_root / "train" / "1.jpg") as image:
        assert image.size == (128, 64) and image.mode == "RGB"


def test_right_half_is_the_label_map_in_the_cmp_colours(facades_root):
    pair = np.asarray(Image.open(facades_root / "train" / "7.jpg"), np.int32)
    labels = pair[:, 64:].reshape(-1, 1, 3)
    distance = np.abs(labels - facades.COLORS[None].astype(np.int32)).sum(-1).min(1)
    assert np.median(distance) < 12  # JPEG moves colours a little, but every pixel is near a class colour
    assert len(facades.CLASSES) == len(facades.COLORS) == 12


@pytest.mark.slow  # makes the 606 facades twice (5 s); the fast tier makes them once, in the facades_root fixture
def test_same_seed_same_bytes_other_seed_other_bytes(facades_root, tmp_path):
    again = facades.make_facades(tmp_path / "again", seed=0, size=64, progress=False)
    # Byte-equal: both made here, by the same numpy and libjpeg code on the same CPU. (Hashes stored from another
    # machine would not do: numpy's float rounding may differ across CPUs and move a pixel by a level.)
    assert _digest(again) == _digest(facades_root)
    other = facades.make_facades(tmp_path / "other", seed=1, size=64, progress=False)
    assert _digest(other) != _digest(facades_root)


def test_a_complete_folder_is_not_written_again(facades_root):
    first = (facades_root / "test" / "1.jpg").stat().st_mtime_ns
    facades.make_facades(facades_root, seed=0, size=64, progress=False)
    assert (facades_root / "test" / "1.jpg").stat().st_mtime_ns == first


def test_one_label_map_has_many_photos():
    labels = facades.label_map(facades.Facade(floors=5, windows_per_floor=4, balconies=(2,)), 128)
    photos = np.stack([facades.render_photo(labels, np.random.default_rng(s)).astype(float) for s in range(8)])
    wall = labels == facades.CLASSES.index("facade")
    wall_colours = photos[:, wall].mean(axis=1)  # (8, 3) mean wall colour per rendering
    assert wall_colours.std(axis=0).mean() > 15  # the wall colour varies a lot across renderings
    assert np.abs(photos[0] - photos[1]).mean() > 10


def test_layout_draws_what_it_says():
    labels = facades.label_map(facades.Facade(floors=3, windows_per_floor=5, door=True, shop=True, pillars=True), 256)
    present = {facades.CLASSES[i] for i in np.unique(labels)}
    assert {"facade", "window", "door", "shop", "pillar", "cornice", "background"} <= present
    assert "balcony" not in present


@pytest.mark.parametrize("layout", [
    facades.Facade(floors=4, windows_per_floor=3, balconies=(2,), moldings=True),
    facades.Facade(floors=6, windows_per_floor=5, shop=True, blinds=True, door=False),
    facades.Facade(floors=3, windows_per_floor=2, deco=True, pillars=True, cornices=False),
])
def test_the_median_of_many_renderings_is_blurred(layout):
    """Fine structure is not in the label map: the L1 optimum (the per-pixel median) is at most half as sharp."""
    labels = facades.label_map(layout, 128)
    photos = np.stack([facades.render_photo(labels, np.random.default_rng(s)) for s in range(32)])
    single = np.mean([evaluate.sharpness(data.normalize(photo)[None]) for photo in photos])
    assert evaluate.sharpness(data.normalize(np.median(photos, axis=0))[None]) <= 0.5 * single


def test_ctrl_c_is_one_line_keeps_no_half_written_image_and_the_same_command_finishes(tmp_path, monkeypatch, capsys):
    made, pair = [], facades.facade_pair

    def interrupted(*args, **kwargs):
        if len(made) == 5:
            raise KeyboardInterrupt  # as Ctrl-C would, in the sixth image
        made.append(args)
        return pair(*args, **kwargs)

    monkeypatch.setattr(facades, "facade_pair", interrupted)
    out = tmp_path / "facades"
    assert main(["facades", str(out), "--size", "16"]) == 130
    printed = capsys.readouterr()
    assert printed.out == "" and "Traceback" not in printed.err  # no folder printed as if it were made
    assert printed.err.splitlines()[-1] == (f"interrupted: {out} is not complete (each image in it is whole); run the same "
                                            "command again to finish it")
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == ["1.jpg", "2.jpg", "3.jpg", "4.jpg", "5.jpg", "facades.json"]
    monkeypatch.setattr(facades, "facade_pair", pair)
    assert main(["facades", str(out), "--size", "16"]) == 0 and capsys.readouterr().out == f"{out}\n"
    assert len(list(out.rglob("*.jpg"))) == sum(facades.SPLITS.values())
