"""Plotting helpers for the chapters: image grids, loss curves, receptive fields, patch-logit maps."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Rectangle


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


def draw_receptive_fields(image, fields: dict, size: float = 5.0):
    """Draw squares of the given sides (name -> pixels) centred on an image: what one D output sees."""
    image = as_image(image)
    figure, axis = plt.subplots(figsize=(size, size))
    axis.imshow(image)
    centre_y, centre_x = image.shape[0] / 2, image.shape[1] / 2
    colours = plt.cm.autumn(np.linspace(0, 1, len(fields)))
    for (name, side), colour in zip(fields.items(), colours):
        axis.add_patch(Rectangle((centre_x - side / 2, centre_y - side / 2), side, side, fill=False,
                                 edgecolor=colour, linewidth=2, label=f"{name}: {side}x{side}"))
    axis.set_xlim(-0.5, image.shape[1] - 0.5)
    axis.set_ylim(image.shape[0] - 0.5, -0.5)
    axis.legend(loc="lower right", fontsize=8, framealpha=0.9)
    axis.axis("off")
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
