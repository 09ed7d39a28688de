"""Diagrams drawn by code for the chapters: the conditional GAN, the two generators, the PatchGAN's fields, the train step.

Each figure is computed from the package's own objects (the generator's filter counts, the receptive
fields of real discriminators, the train step's names and lambda) so that the picture follows the
code; tests/test_diagrams.py checks that it does. Each function returns a matplotlib Figure about
10 inches wide, the book's width.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import matplotlib.pyplot as plt
from matplotlib import patheffects
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Patch, Rectangle

from p2p.lab.viz import as_image

#: Font sizes (points) for a figure shown 10 inches wide: box texts, notes, titles.
TEXT, NOTE, TITLE = 11.5, 10, 13

#: Colours of the diagrams' parts.
GENERATOR, DISCRIMINATOR, LOSS, OPTIMIZER = "#c6dbef", "#fdd0a2", "#e5e5e5", "#d9f0d3"
REAL, FAKE = "#2ca25f", "#de2d26"
ENCODER, DECODER, SKIP, BOTTLENECK, IMAGE = "#9ecae1", "#fdae6b", "#3182bd", "#756bb1", "#d9d9d9"

#: The paper's four discriminators: n_layers -> its name in the paper, for the legends.
PAPER_DISCRIMINATORS = {0: "PixelGAN", 1: "", 3: "the paper's choice", 5: "ImageGAN"}


class _Box(NamedTuple):
    """A box in a canvas's inch coordinates: centre (x, y), width w and height h; its sides' midpoints."""

    x: float
    y: float
    w: float
    h: float

    @property
    def left(self):
        return (self.x - self.w / 2, self.y)

    @property
    def right(self):
        return (self.x + self.w / 2, self.y)

    @property
    def top(self):
        return (self.x, self.y + self.h / 2)

    @property
    def bottom(self):
        return (self.x, self.y - self.h / 2)


def _canvas(width: float, height: float):
    """A figure of width x height inches whose single axis counts in inches, so that boxes and text sizes agree."""
    figure = plt.figure(figsize=(width, height))
    axis = figure.add_axes((0, 0, 1, 1))
    axis.set_xlim(0, width)
    axis.set_ylim(0, height)
    axis.axis("off")
    return figure, axis


def _box(axis, box: _Box, text: str = "", colour: str = "white", *, fontsize: float = TEXT, gid: str | None = None,
         **style):
    """Draw a rounded box with centred text; returns the box."""
    style = {"edgecolor": "black", "linewidth": 1.2, **style}
    patch = FancyBboxPatch((box.x - box.w / 2, box.y - box.h / 2), box.w, box.h, facecolor=colour,
                           boxstyle="round,pad=0,rounding_size=0.07", **style)
    patch.set_gid(gid)
    axis.add_patch(patch)
    if text:
        axis.text(box.x, box.y, text, ha="center", va="center", fontsize=fontsize, linespacing=1.3)
    return box


def _arrow(axis, start, end, *, colour: str = "black", dashed: bool = False, curve: float = 0.0, width: float = 1.6,
           gid: str | None = None, both: bool = False):
    """Draw an arrow from start to end (points in data coordinates); returns the patch."""
    arrow = FancyArrowPatch(start, end, arrowstyle="<|-|>" if both else "-|>", mutation_scale=16, color=colour,
                            linewidth=width, linestyle=(0, (4, 2.5)) if dashed else "-",
                            connectionstyle=f"arc3,rad={curve}", shrinkA=0, shrinkB=0, zorder=3)
    arrow.set_gid(gid)
    axis.add_patch(arrow)
    return arrow


def _thumbnail(axis, box: _Box, image, name: str, colour: str):
    """An image inside box (data extent), or a coloured placeholder naming it when there is no image."""
    if image is None:
        _box(axis, box, name, colour, fontsize=TITLE)
    else:
        left, bottom = box.x - box.w / 2, box.y - box.h / 2
        axis.imshow(as_image(image), extent=(left, left + box.w, bottom, bottom + box.h), zorder=2)
        axis.add_patch(Rectangle((left, bottom), box.w, box.h, fill=False, edgecolor="black", linewidth=1.2, zorder=3))
    return box


def conditional_gan(inputs=None, outputs=None, targets=None, *, l1_weight: float | None = None):
    """The paper's Figure 2: G maps x to G(x); D judges (x, G(x)) fake, (x, y) real (chapter "The conditional GAN objective").

    `inputs`, `outputs`, `targets`: one image each (x, G(x), y), drawn as thumbnails, or None for named boxes.
    `l1_weight`: lambda, by default Pix2Pix's.
    """
    if l1_weight is None:
        l1_weight = _default_l1_weight()
    figure, axis = _canvas(10.0, 5.3)
    top, bottom, side = 3.55, 1.15, 1.15
    x_top = _thumbnail(axis, _Box(0.85, top, side, side), inputs, "x", IMAGE)
    axis.text(x_top.x, top - side / 2 - 0.12, "x: the input\n(a label map)", ha="center", va="top", fontsize=NOTE)
    x_bottom = _thumbnail(axis, _Box(0.85, bottom, side, side), inputs, "x", IMAGE)
    axis.text(x_bottom.x, bottom - side / 2 - 0.12, "x", ha="center", va="top", fontsize=NOTE)
    generator = _box(axis, _Box(2.55, top, 1.25, 1.0), "G\ngenerator", GENERATOR, fontsize=TITLE)
    fake = _thumbnail(axis, _Box(4.3, top, side, side), outputs, "G(x)", IMAGE)
    axis.text(fake.x, top - side / 2 - 0.12, "G(x): the output", ha="center", va="top", fontsize=NOTE)
    real = _thumbnail(axis, _Box(4.3, bottom, side, side), targets, "y", IMAGE)
    axis.text(real.x, bottom - side / 2 - 0.12, "y: the real photo\n(x's target)", ha="center", va="top", fontsize=NOTE)
    axis.text(2.57, bottom, "a training pair\n(x, y) from the data", ha="center", va="center", fontsize=NOTE,
              style="italic", color="dimgrey")
    _arrow(axis, x_top.right, generator.left)
    _arrow(axis, generator.right, fake.left)

    # z: no noise vector, only dropout inside G
    axis.text(generator.x, 4.95, "z: no noise vector; the noise is\ndropout inside G, on at test time too", ha="center",
              va="center", fontsize=NOTE, bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": "grey"})
    _arrow(axis, (generator.x, 4.62), generator.top, dashed=True, colour="grey")

    # the L1 term links G(x) to y
    _arrow(axis, (fake.x, top - side / 2 - 0.5), (real.x, bottom + side / 2 + 0.04), colour="dimgrey", both=True,
           dashed=True, width=1.2)
    axis.text(fake.x + 0.12, (top + bottom) / 2 - 0.1, f"G's loss also has\n+ {l1_weight:g} \u00d7 |y \u2212 G(x)|\n"
              f"(the L1 term, \u03bb = {l1_weight:g})", ha="left", va="center", fontsize=NOTE, color="dimgrey")

    # the two pairs D judges, each concatenated on channels
    verdicts = []
    for row, second, name, verdict, colour in ((top, outputs, "G(x)", "fake", FAKE), (bottom, targets, "y", "real", REAL)):
        pair = _box(axis, _Box(6.35, row, 1.95, 1.2), "", "white", linestyle="--", edgecolor="grey")
        _thumbnail(axis, _Box(5.88, row, 0.85, 0.85), inputs, "x", IMAGE)
        _thumbnail(axis, _Box(6.82, row, 0.85, 0.85), second, name, IMAGE)
        axis.text(pair.x, row - 0.72, f"pair (x, {name})", ha="center", va="top", fontsize=NOTE)
        judge = _box(axis, _Box(8.05, row, 0.95, 1.0), "D", DISCRIMINATOR, fontsize=TITLE)
        _arrow(axis, pair.right, judge.left)
        verdicts.append(_box(axis, _Box(9.35, row, 0.9, 0.55), verdict, "white", fontsize=TEXT, edgecolor=colour,
                             linewidth=2.2))
        axis.text(9.35, row + 0.3, "D says", ha="center", va="bottom", fontsize=NOTE)
        _arrow(axis, judge.right, verdicts[-1].left)
    _arrow(axis, fake.right, (5.35, top))
    _arrow(axis, real.right, (5.35, bottom))
    axis.text(8.05, (top + bottom) / 2, "the same D,\nshown twice", ha="center", va="center", fontsize=NOTE, color="dimgrey")
    axis.text(9.35, top - 0.35, "G wants D\nto say real", ha="center", va="top", fontsize=NOTE, color=FAKE)
    return figure


def _default_l1_weight() -> float:
    """lambda as the train step's Pix2Pix takes it by default."""
    from p2p.pix2pix import Pix2Pix

    return float(inspect.signature(Pix2Pix.__init__).parameters["l1_weight"].default)


def _size(side: int, channels: str | int) -> str:
    """A tensor's shape as the diagrams write it: 128x128x64."""
    return f"{side}x{side}x{channels}"


def generator_architectures(image_size: int = 256, ngf: int = 64, *, in_channels: int = 3, out_channels: int = 3):
    """The encoder-decoder beside the U-Net (the paper's Figure 3) with p2p.models' layer sizes (chapter "The generator")."""
    from p2p.models import generator_filters

    filters = generator_filters(image_size, ngf)
    depth = len(filters)
    figure, panels = plt.subplots(1, 2, figsize=(10.0, 0.62 * (depth + 1) + 1.6))
    figure.subplots_adjust(left=0.0, right=1.0, top=0.9, bottom=0.13, wspace=0.02)
    for panel, skips in zip(panels, (False, True)):
        _generator_panel(panel, image_size, filters, skips, in_channels, out_channels)
    handles = [Patch(facecolor=ENCODER, edgecolor="black", label="encoder: 4x4 conv, stride 2, LeakyReLU 0.2"),
               Patch(facecolor=DECODER, edgecolor="black", label="decoder: 4x4 transposed conv, stride 2, ReLU"),
               Patch(facecolor=DECODER, edgecolor="black", hatch="///", label="decoder with dropout 50% (the noise z)"),
               Line2D([], [], color=SKIP, linewidth=2, marker=">", label="U-Net skip: copy, concatenate on channels")]
    figure.legend(handles=handles, loc="lower center", ncol=2, fontsize=NOTE, frameon=False, bbox_to_anchor=(0.5, 0.0))
    return figure


def _generator_panel(axis, image_size: int, filters: Sequence[int], skips: bool, in_channels: int, out_channels: int):
    """One generator of `generator_architectures`: encoder down the left, 1x1 bottleneck at the bottom, decoder up the right."""
    depth = len(filters)
    encoder_x, decoder_x, bottleneck_x = 3.4, 7.3, 5.35
    axis.set_xlim(0, 12.0)
    axis.set_ylim(-0.75, depth + 0.75)
    axis.axis("off")
    y = lambda level: depth - level  # level 0 (the image) on top, level depth (1x1) at the bottom
    block_width = lambda level: 0.45 + 1.7 * (depth - level) / depth
    height = 0.5

    def block(x, level, colour, hatch=None, gid=None):
        box = _Box(x, y(level), block_width(level), height)
        _box(axis, box, colour=colour, hatch=hatch, gid=gid, linewidth=1.0)
        return box

    def label(box, text, side):
        x = box.x - box.w / 2 - 0.15 if side == "left" else box.x + box.w / 2 + 0.15
        axis.text(x, box.y, text, ha="right" if side == "left" else "left", va="center", fontsize=NOTE)

    encoder = [block(encoder_x, 0, IMAGE)]
    axis.text(encoder_x, depth + 0.33, f"input {_size(image_size, in_channels)}", ha="center", va="bottom", fontsize=NOTE)
    for level in range(1, depth):
        encoder.append(block(encoder_x, level, ENCODER, gid=f"encoder{level}"))
        label(encoder[-1], _size(image_size >> level, filters[level - 1]), "left")
        _arrow(axis, encoder[-2].bottom, encoder[-1].top, width=1.2)
    bottleneck = block(bottleneck_x, depth, BOTTLENECK, gid="bottleneck")
    axis.text(bottleneck.x, bottleneck.y - 0.42, f"bottleneck {_size(1, filters[-1])}", ha="center", va="top",
              fontsize=NOTE, color=BOTTLENECK, weight="bold")
    _arrow(axis, encoder[-1].bottom, bottleneck.left, width=1.2, curve=0.25)

    previous = bottleneck
    for level in range(depth - 1, 0, -1):  # decoder block j = depth - level brings the map back to encoder level's size
        j = depth - level
        hatch = "///" if j <= 3 else None
        channels = filters[level - 1]
        box = block(decoder_x, level, DECODER, hatch=hatch, gid=f"decoder{j}")
        if skips:  # the left half is the copy of encoder layer `level`, concatenated on channels
            half = _Box(box.x - box.w / 4, box.y, box.w / 2, box.h)
            _box(axis, half, colour=ENCODER, linewidth=1.0)
            _arrow(axis, encoder[level].right, half.left, colour=SKIP, width=1.8, gid="skip")
            label(box, _size(image_size >> level, f"({channels}+{channels})"), "right")
        else:
            label(box, _size(image_size >> level, channels), "right")
        _arrow(axis, previous.right if previous is bottleneck else previous.top, box.bottom, width=1.2,
               curve=0.25 if previous is bottleneck else 0.0)
        previous = box
    output = block(decoder_x, 0, IMAGE)
    axis.text(decoder_x, depth + 0.33, f"output {_size(image_size, out_channels)}, tanh", ha="center", va="bottom",
              fontsize=NOTE)
    _arrow(axis, previous.top, output.bottom, width=1.2)
    title = (f"U-Net: {depth - 1} skips, layer i to layer n \u2212 i" if skips
             else "encoder-decoder: all through the bottleneck")
    axis.set_title(title, fontsize=TITLE, pad=12)


@functools.cache
def _patchgan_geometry(n_layers: int, image_size: int) -> tuple[int, int | None]:
    """(receptive field, output grid side or None if too small) of a real Discriminator, built 1 filter wide to be cheap."""
    from p2p.models import Discriminator, receptive_field

    try:
        model = Discriminator(image_size, ndf=1, n_layers=n_layers, in_channels=1)
        grid = model.output_shape[1]
    except ValueError:  # the image is too small for this depth: the field does not depend on the size
        model, grid = Discriminator(2 ** (n_layers + 2), ndf=1, n_layers=n_layers, in_channels=1), None
    return receptive_field(model), grid


def patchgan_fields(image, fields: Mapping[int, int] | None = None, image_size: int = 256,
                    n_layers: Sequence[int] = (0, 1, 3, 5)):
    """The receptive fields of the PatchGANs with n_layers 0, 1, 3, 5 over an image (chapter "The PatchGAN discriminator").

    `fields`: n_layers -> side in pixels; by default measured by `receptive_field` on real Discriminators with those
    `n_layers`, whose output grids at `image_size` the legend gives too. The image is shown `image_size` pixels wide.
    """
    if fields is None:
        geometry = {n: _patchgan_geometry(n, image_size) for n in n_layers}
        fields = {n: field for n, (field, _) in geometry.items()}
    else:
        geometry = {n: (field, None) for n, field in fields.items()}
    image = as_image(image)
    figure = plt.figure(figsize=(10.0, 6.0))
    main = figure.add_axes((0.0, 0.01, 0.56, 0.9))
    zoom = figure.add_axes((0.64, 0.5, 0.3, 0.4))
    largest = max(max(fields.values()), image_size)
    margin = (largest - image_size) / 2 + 0.02 * image_size
    for axis in (main, zoom):
        axis.imshow(image, extent=(0, image_size, image_size, 0), interpolation="nearest")
    main.set_xlim(-margin, image_size + margin)
    main.set_ylim(image_size + margin, -margin)
    main.axis("off")
    main.set_title(f"what one output logit sees, on a {image_size}x{image_size} image", fontsize=TITLE)

    colours = ["#00e5ff", "#ffea00", "#ff3d00", "#d500f9", "#76ff03", "#ffffff"]
    centre = image_size // 2
    outline = [patheffects.withStroke(linewidth=4.0, foreground="black")]
    handles = []
    for (n, side), colour in zip(sorted(fields.items(), key=lambda item: item[1]), colours * 4):
        corner = centre - (side + 1) // 2  # pixel-aligned, centred on pixel (centre - 1) for odd sides
        beyond = side > image_size
        grid = geometry[n][1]
        lines = [f"{side}x{side}: n_layers={n}" + (f", {PAPER_DISCRIMINATORS[n]}" if PAPER_DISCRIMINATORS.get(n) else "")]
        if grid:
            lines.append(f"{grid}x{grid} logits")
        if side <= 2:
            lines[-1] += "; circled, magnified above"
        if beyond:
            lines.append(f"larger than the image: dashed,\nbeyond its {image_size} px")
        for axis in (main, zoom):
            box = Rectangle((corner, corner), side, side, fill=False, edgecolor=colour, linewidth=2.2 if axis is main else 3,
                            linestyle=(0, (5, 3)) if beyond else "-", path_effects=outline, label="\n".join(lines), zorder=3)
            box.set_gid(f"field{side}")
            axis.add_patch(box)
        handles.append(Patch(facecolor="none", edgecolor=colour, linewidth=2.2, linestyle=(0, (2, 1)) if beyond else "-",
                             path_effects=outline, label=box.get_label()))
        if side <= 2:  # too small to see at the full image's scale: a ring marks it
            marker = Line2D([corner + side / 2], [corner + side / 2], marker="o", markersize=13, markerfacecolor="none",
                            markeredgecolor=colour, markeredgewidth=2.2, path_effects=outline, zorder=4)
            marker.set_gid(f"marker{side}")
            main.add_line(marker)
    small = sorted(fields.values())
    window = max(8, int(1.5 * (small[1] if len(small) > 1 else small[0])) + 2)
    window = min(window + window % 2, image_size)
    zoom.set_xlim(centre - window / 2, centre + window / 2)
    zoom.set_ylim(centre + window / 2, centre - window / 2)
    zoom.set_xticks([])
    zoom.set_yticks([])
    zoom.set_title(f"the centre magnified ({window}x{window} px,\nthe white square on the left)", fontsize=NOTE)
    _, connectors = main.indicate_inset_zoom(zoom, edgecolor="white", linewidth=1.5, alpha=1.0)
    for line in connectors:
        line.set_visible(False)  # they would cross the image; the title says where the window is
    figure.legend(handles=handles, loc="lower left", bbox_to_anchor=(0.59, 0.0), fontsize=NOTE, framealpha=1.0,
                  title="receptive field: discriminator", title_fontsize=NOTE, labelspacing=0.8)
    return figure


def train_step_dataflow(l1_weight: float | None = None):
    """Pix2Pix.train_step as data flow: D's step on its tape, then G's against the updated D (chapter "The train step")."""
    if l1_weight is None:
        l1_weight = _default_l1_weight()
    disc, gen_total, gen_gan, gen_l1 = "disc", "gen_total", "gen_gan", "gen_l1"  # as p2p.pix2pix.METRICS logs them
    figure, axis = _canvas(10.0, 7.6)
    wire_x = 1.05

    # the tapes: gen_tape around everything, paused while D steps inside its own tape
    _box(axis, _Box(5.05, 3.72, 9.9, 7.28), colour="none", edgecolor=SKIP, linewidth=2.0, linestyle="--")
    axis.text(0.2, 7.2, "gen_tape: G's tape records (1) G(x) and (3) D(x, G(x)) and the L1 term",
              fontsize=TEXT, va="center", color=SKIP, weight="bold")
    _box(axis, _Box(6.0, 4.55, 7.7, 2.45), colour="#f0f0f0", edgecolor="grey", linewidth=1.0)
    axis.text(2.3, 5.6, "(2) D's step, inside gen_tape.stop_recording(): not on G's tape", fontsize=TEXT, va="center",
              color="dimgrey", weight="bold")
    _box(axis, _Box(6.0, 4.3, 7.4, 1.75), colour="none", edgecolor="#e6550d", linewidth=2.0, linestyle="--")
    axis.text(2.45, 5.05, "tape: D's tape, in train_discriminator", fontsize=NOTE, va="center", color="#e6550d",
              weight="bold")

    # (1) G(x), recorded on gen_tape; its value runs down a wire to every use
    generator = _box(axis, _Box(wire_x, 6.45, 1.45, 0.7), "G(x)\ntraining=True", GENERATOR)
    axis.text(wire_x + 0.85, 6.45, "(1) outputs = G(x), dropout on\n(x: the batch's label maps, y: its photos)",
              fontsize=NOTE, va="center")
    axis.plot([wire_x, wire_x], [generator.bottom[1], 1.35], color="black", linewidth=1.6, zorder=2)
    axis.text(wire_x - 0.1, 2.2, "G(x)", rotation=90, ha="right", va="center", fontsize=NOTE)

    # (2) D's step: D on the real pair and on the fake pair with G(x) stopped
    real = _box(axis, _Box(3.6, 4.6, 2.2, 0.52), "D(x, y)", DISCRIMINATOR)
    fake = _box(axis, _Box(3.6, 3.85, 2.2, 0.52), "D(x, stop_gradient(G(x)))", DISCRIMINATOR, fontsize=NOTE)
    _arrow(axis, (wire_x, fake.y), fake.left, dashed=True, colour="dimgrey")
    axis.text((wire_x + fake.left[0]) / 2, fake.y + 0.08, "stopped", ha="center", va="bottom", fontsize=NOTE,
              color="dimgrey")
    d_loss = _box(axis, _Box(6.55, 4.22, 2.35, 0.8), f"{disc} =\n(BCE(real, 1) + BCE(fake, 0)) / 2", LOSS, fontsize=NOTE)
    _arrow(axis, real.right, (d_loss.left[0], d_loss.y + 0.15))
    _arrow(axis, fake.right, (d_loss.left[0], d_loss.y - 0.15))
    d_step = _box(axis, _Box(8.85, 4.22, 1.7, 0.8), "minimize:\ndisc_optimizer\nmoves D's weights", OPTIMIZER,
                  fontsize=NOTE)
    _arrow(axis, d_loss.right, d_step.left)

    # (3) G's step: the updated D judges G(x) again, recorded; plus lambda times L1
    axis.text(1.3, 3.0, "(3) G's step, against the updated D", fontsize=TEXT, va="center", color=SKIP, weight="bold")
    judged = _box(axis, _Box(3.6, 2.3, 2.2, 0.52), "D(x, G(x))", DISCRIMINATOR)
    _arrow(axis, (wire_x, judged.y), judged.left)
    _arrow(axis, d_step.bottom, (judged.x + 0.75, judged.top[1]), colour="#e6550d", curve=-0.1, dashed=True)
    axis.text(8.0, 3.05, "D, updated", ha="left", fontsize=NOTE, color="#e6550d")
    g_gan = _box(axis, _Box(6.55, 2.3, 2.35, 0.52), f"{gen_gan} = BCE(fake, 1)", LOSS, fontsize=NOTE)
    _arrow(axis, judged.right, g_gan.left)
    g_l1 = _box(axis, _Box(6.55, 1.35, 2.35, 0.52), f"{gen_l1} = mean |y - G(x)|", LOSS, fontsize=NOTE)
    _arrow(axis, (wire_x, g_l1.y), g_l1.left)
    total = _box(axis, _Box(6.55, 0.5, 3.3, 0.5), f"{gen_total} = {gen_gan} + {l1_weight:g} x {gen_l1}", LOSS,
                 fontsize=NOTE)
    _arrow(axis, g_gan.right, (total.right[0] - 0.3, total.top[1]), curve=-0.35)
    _arrow(axis, g_l1.bottom, (g_l1.x, total.top[1]))
    g_step = _box(axis, _Box(9.2, 1.35, 1.35, 0.95), "minimize:\ngen_optimizer\nmoves G's\nweights only", OPTIMIZER,
                  fontsize=NOTE)
    _arrow(axis, total.right, g_step.bottom, curve=0.3)
    return figure
