"""The chapters' plotting helpers and the facade editor widget."""

import datetime
import io

import matplotlib

matplotlib.use("Agg")

import numpy as np
from PIL import Image

from p2p import Generator
from p2p.lab import viz


def _children(widget):
    yield widget
    for child in getattr(widget, "children", ()):
        yield from _children(child)


def _file(name, content):
    """One file as ipywidgets' FileUpload holds it."""
    return {"name": name, "type": "image/png", "size": len(content), "content": memoryview(content),
            "last_modified": datetime.datetime(2026, 1, 1)}


def test_facade_editor_repaints_on_every_change():
    import ipywidgets as widgets

    facade_editor = viz.facade_editor(Generator(32, 4), 32, display_size=64)
    parts = list(_children(facade_editor))
    images = [w for w in parts if isinstance(w, widgets.Image)]
    floors = next(w for w in parts if isinstance(w, widgets.IntSlider) and w.description == "floors")
    shop = next(w for w in parts if isinstance(w, widgets.Checkbox) and w.description == "shop")
    labels_before = images[0].value
    assert Image.open(io.BytesIO(images[1].value)).size == (64, 64)
    floors.value = 7
    assert images[0].value != labels_before
    labels_before = images[0].value
    shop.value = True
    assert images[0].value != labels_before
    # an uploaded label map is painted, and a broken upload is reported, not raised
    upload = next(w for w in parts if isinstance(w, widgets.FileUpload))
    status = next(w for w in parts if isinstance(w, widgets.Label) and w.value.startswith("drawn"))
    buffer = io.BytesIO()
    Image.fromarray(np.full((50, 50, 3), [0, 0, 255], np.uint8)).save(buffer, "PNG")
    upload.set_trait("value", (_file("mine.png", buffer.getvalue()),))
    assert status.value == "painted mine.png"
    upload.set_trait("value", (_file("junk.png", b"junk"),))
    assert status.value.startswith("junk.png: not an image")


def test_plots_draw():
    metrics = {"step": np.array([50, 100]), "disc": np.array([0.7, 0.6]), "gen_gan": np.array([0.7, 0.9]),
               "gen_l1": np.array([0.4, 0.3]), "gen_total": np.array([40.7, 30.9])}
    assert len(viz.plot_losses(metrics).axes) == 2
    image = np.zeros((64, 64, 3), np.float32)
    assert len(viz.show_columns({"x": image[None], "y": image[None]}).axes) == 2
    logits = np.zeros((6, 6, 1))
    assert len(viz.show_patch_logits({"real": image, "fake": image}, {"real": logits, "fake": logits}).axes) == 5


def test_show_crops_draws_a_box_per_crop_dashed_where_mirrored():
    image = np.zeros((20, 20, 3), np.uint8)
    crops = np.zeros((2, 16, 16, 3), np.uint8)
    figure = viz.show_crops(image, [(0, 0, False), (4, 4, True)], {"input": crops, "target": crops})
    whole, *tiles = figure.axes
    boxes = whole.patches
    assert [(box.get_x(), box.get_y(), box.get_width()) for box in boxes] == [(-0.5, -0.5, 16), (3.5, 3.5, 16)]
    assert [box.get_linestyle() for box in boxes] == ["-", "--"]
    assert [axis.get_title() for axis in tiles] == ["input, crop 1", "target, crop 1", "input, crop 2, mirrored",
                                                    "target, crop 2, mirrored"]
    matplotlib.pyplot.close(figure)
