"""Plotting helpers for the chapters: image grids, loss curves, receptive fields, patch-logit maps."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import patheffects


def as_image(image) -> np.ndarray:
    """A displayable uint8 array from a [-1, 1] float image (tensor or array) or a uint8 one."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        image = np.clip(np.round((image.astype(np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)
    return image


def show_columns(columns: dict, size: float = 2.2, title: str | None = None):
    """Show a grid whose columns are named batches of images (inputs, outputs, targets...), one row per example."""
    names, batches = list(columns), [np.asarray(b) for b in columns.values()]
    rows = len(batches[0])
    figure, axes = plt.subplots(rows, len(names), figsize=(size * len(names), size * rows), squeeze=False)
    for column, (name, batch) in enumerate(zip(names, batches)):
        axes[0, column].set_title(name)
        for row in range(rows):
            axes[row, column].imshow(as_image(batch[row]))
            axes[row, column].axis("off")
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure


def show_crops(image, places, rows: dict, size: float = 2.0):
    """An image with boxes where crops were cut from it, beside the crops (chapter "Data").

    places: up to four crops' (top, left, mirrored); rows: {name: crops}, a row of crops each, all cut at `places`. A
    mirrored crop's box and frame are dashed.
    """
    colours = ("red", "darkorange", "magenta", "black")
    image, side = as_image(image), np.asarray(next(iter(rows.values()))[0]).shape[0]
    enlarged = len(rows)  # the image, as tall as its rows of crops: large enough to tell the boxes apart
    figure = plt.figure(figsize=(size * (enlarged + len(places)), size * len(rows)))
    grid = figure.add_gridspec(len(rows), 1 + len(places), width_ratios=[enlarged] + [1] * len(places))
    whole = figure.add_subplot(grid[:, 0])
    whole.imshow(image, alpha=0.6)  # faded, so that the boxes stand out
    whole.set_title(f"{next(iter(rows))} resized to {image.shape[1]}x{image.shape[0]}: the crops' boxes", fontsize=9)
    whole.axis("off")
    for number, ((top, left, mirrored), colour) in enumerate(zip(places, colours), 1):
        style = "--" if mirrored else "-"
        whole.add_patch(plt.Rectangle((left - 0.5, top - 0.5), side, side, fill=False, edgecolor=colour, linewidth=2,
                                      linestyle=style))
        right, bottom = number % 2 == 0, number > 2  # each box's number in a corner of its own
        whole.text(left + (side - 2 if right else 1), top + (side - 2 if bottom else 1), str(number), color=colour,
                   fontsize=12, fontweight="bold", ha="right" if right else "left", va="bottom" if bottom else "top",
                   path_effects=[patheffects.withStroke(linewidth=2.5, foreground="white")])
        for row, (name, crops) in enumerate(rows.items()):
            axis = figure.add_subplot(grid[row, number])
            axis.imshow(as_image(crops[number - 1]))
            axis.set(xticks=[], yticks=[])
            for spine in axis.spines.values():
                spine.set(edgecolor=colour, linewidth=3, linestyle=style)
            axis.set_title(f"{name}, crop {number}" + (", mirrored" if mirrored else ""), fontsize=9)
    figure.tight_layout()
    return figure


def plot_losses(metrics: dict, title: str | None = None):
    """Loss curves of a run's metrics.csv: D and G's adversarial losses against log 2, and the L1 loss."""
    figure, (gan, l1) = plt.subplots(1, 2, figsize=(11, 3.5))
    for name, label in (("disc", "D: (BCE real + BCE fake) / 2"), ("gen_gan", "G: BCE(D(x, G(x)), real)")):
        gan.plot(metrics["step"], metrics[name], label=label)
    gan.axhline(math.log(2), color="grey", linestyle="--", label="log 2 = 0.69: D cannot tell")
    gan.set_xlabel("step")
    gan.set_title("adversarial losses")
    gan.legend(fontsize=8)
    l1.plot(metrics["step"], metrics["gen_l1"], color="tab:green")
    l1.set_xlabel("step")
    l1.set_title("L1 loss of G (in [-1, 1] units)")
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure


def show_patch_logits(images: dict, logits: dict, size: float = 3.0):
    """Images above D's patch maps (probability 'real' per patch), e.g. a real pair against a generated one."""
    names = list(images)
    figure, axes = plt.subplots(2, len(names), figsize=(size * len(names), size * 2), squeeze=False)
    for column, name in enumerate(names):
        axes[0, column].imshow(as_image(images[name]))
        axes[0, column].set_title(name)
        probability = 1.0 / (1.0 + np.exp(-np.asarray(logits[name])[..., 0]))
        shown = axes[1, column].imshow(probability, cmap="RdYlGn", vmin=0, vmax=1)
        axes[1, column].set_title(f"D: mean p(real) = {probability.mean():.2f}")
        for axis in axes[:, column]:
            axis.axis("off")
    figure.colorbar(shown, ax=axes[1, :].tolist(), shrink=0.8, label="p(real) per patch")
    return figure


def _png(image, display_size: int) -> bytes:
    """PNG bytes of an image, enlarged (nearest neighbour) to display_size pixels wide."""
    import io

    from PIL import Image

    picture = Image.fromarray(as_image(image))
    picture = picture.resize((display_size, display_size * picture.height // picture.width), Image.NEAREST)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def facade_editor(generator, image_size: int, display_size: int = 256):
    """A facade editor (chapter "Play"): sliders and boxes draw a label map, the generator paints it live.

    An uploaded label map (in the CMP colours) is painted too. Returns the ipywidgets box.
    """
    import io

    import ipywidgets as widgets
    from PIL import Image

    from p2p import data
    from p2p.inference import translate
    from p2p.lab import facades

    floors = widgets.IntSlider(value=4, min=2, max=8, description="floors")
    windows = widgets.IntSlider(value=4, min=1, max=7, description="windows/floor")
    width = widgets.FloatSlider(value=0.5, min=0.25, max=0.8, step=0.05, description="window width")
    boxes = {name: widgets.Checkbox(value=name in ("door", "cornices"), description=name, indent=False)
             for name in ("door", "shop", "balconies", "blinds", "moldings", "deco", "pillars", "cornices")}
    upload = widgets.FileUpload(accept="image/*", multiple=False, description="your label map")
    label_view, photo_view = widgets.Image(format="png"), widgets.Image(format="png")
    status = widgets.Label()

    def paint(label_rgb):
        inputs = data.normalize(label_rgb)[None]
        photo = translate(generator, data.resize(inputs, image_size))[0]  # test time as in the paper
        label_view.value = _png(label_rgb, display_size)
        photo_view.value = _png(photo, display_size)

    def redraw(_=None):
        options = {name: box.value for name, box in boxes.items()}
        options["balconies"] = tuple(range(1, floors.value, 2)) if options["balconies"] else ()
        layout = facades.Facade(floors=floors.value, windows_per_floor=windows.value, window_width=width.value, **options)
        paint(facades.colorize(facades.label_map(layout, image_size)))
        status.value = "drawn from the controls"

    def uploaded(change):
        files = change["new"]
        if not files:
            return
        name, content = files[0]["name"], files[0]["content"]
        try:
            picture = Image.open(io.BytesIO(bytes(content))).convert("RGB").resize((image_size, image_size), Image.NEAREST)
        except OSError as error:
            status.value = f"{name}: not an image ({error})"
            return
        paint(np.asarray(picture))
        status.value = f"painted {name}"

    for control in (floors, windows, width, *boxes.values()):
        control.observe(redraw, names="value")
    upload.observe(uploaded, names="value")
    redraw()
    controls = widgets.VBox([floors, windows, width, widgets.GridBox(list(boxes.values()),
                             layout=widgets.Layout(grid_template_columns="repeat(2, 120px)")), upload, status])
    pictures = widgets.HBox([widgets.VBox([widgets.Label("label map"), label_view]),
                             widgets.VBox([widgets.Label("generated photo"), photo_view])])
    return widgets.HBox([controls, pictures])


def plot_milestones(runs: dict, measures=("sharpness", "colour_spread", "l1")):
    """Each run's test-split measures against its training steps (`bookruns.milestones`), the real photos' as a line."""
    figure, axes = plt.subplots(1, len(measures), figsize=(4.2 * len(measures), 3.3), squeeze=False)
    for axis, measure in zip(axes[0], measures):
        for name, milestones in runs.items():
            steps = sorted(step for step in milestones if step != "truth")
            axis.plot(steps, [milestones[s][measure] for s in steps], marker="o", label=name)
        truth = next(iter(runs.values()))["truth"][measure]
        if truth:
            axis.axhline(truth, color="grey", linestyle="--", label="real photos")
        axis.set_xscale("log")
        axis.set_xlabel("training steps")
        axis.set_title(measure.replace("_", " ") + (" to the ground truth" if measure == "l1" else ""))
        axis.legend(fontsize=8)
    figure.tight_layout()
    return figure


def show_milestone_samples(samples: dict, rows: int = 3, size: float = 1.9):
    """Test examples as a run saw them during training: input, the output at each milestone, target (`bookruns.samples`)."""
    steps = sorted((key for key in samples if key.startswith("step_")), key=lambda key: int(key[5:]))
    columns = {"input": samples["inputs"][:rows]}
    columns.update({f"{int(key[5:]):,} steps": samples[key][:rows] for key in steps})
    columns["ground truth"] = samples["targets"][:rows]
    return show_columns(columns, size=size)
