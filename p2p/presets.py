"""Presets: whole named configurations, from the paper's GPU setting to a laptop CPU.

Explained in the chapter "The training loop"; every chapter's parameters cell starts from one.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Preset:
    """One configuration of data size, model widths, patch size and training length."""

    name: str
    image_size: int
    ngf: int
    ndf: int
    n_layers: int  # PatchGAN depth: 0, 1, 3, 5 give 1x1, 16x16, 70x70, 286x286 fields
    batch_size: int
    epochs: float  # passes over the 400 training facades
    jit_compile: bool | str  # XLA: True, False or "auto" (on with a GPU or TPU; slower than oneDNN on CPUs)
    description: str
    lr_decay: float = 0.0  # the last share of the steps over which the learning rate falls linearly to zero

    def steps(self, train_size: int = 400) -> int:
        """Number of train steps of `epochs` passes over `train_size` images."""
        return int(round(self.epochs * max(train_size // self.batch_size, 1)))


PRESETS = {
    preset.name: preset
    for preset in (
        Preset("paper", 256, 64, 64, 3, 1, 200, "auto",
               "The paper's facades setting: 256x256, ngf = ndf = 64, 70x70 PatchGAN, batch 1, 200 epochs, "
               "the learning rate constant for 100 and decaying linearly to zero over the last 100, as in the "
               "official PyTorch code (the Lua code kept it constant). For a GPU (Colab): about 80,000 steps.",
               lr_decay=0.5),
        Preset("cpu", 128, 16, 16, 2, 1, 1.5, "auto",
               "A laptop CPU in about a minute: 128x128, ngf = ndf = 16, a 34x34 PatchGAN (the "
               "same share of the image as 70x70 at 256), 1.5 epochs (600 steps)."),
        Preset("book", 128, 16, 32, 2, 1, 75, "auto",
               "The book runs (p2p.bookruns), trained once and shipped: 128x128, ngf = 16, ndf = 32, a 34x34 "
               "PatchGAN, 75 epochs (30,000 steps); all of them together in about an hour on 2 CPU cores."),
        Preset("tiny", 32, 8, 8, 1, 1, 1, False,
               "For tests: 32x32, ngf = ndf = 8, a 16x16 PatchGAN; seconds per run."),
    )
}


def get(name: str) -> Preset:
    """The preset called `name`, with the known names in the error if there is none."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None
