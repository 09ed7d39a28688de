"""A run's settings in one frozen dataclass, and the presets (chapter "Running a run").

A `Config` holds every setting that changes what a run trains; two runs are the same
when their Configs are equal (`differences`). How often a run logs or checkpoints is not
a setting.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

CHOICES = {
    "direction": ("BtoA", "AtoB"),
    "upsample": ("transpose", "resize"),
    "norm": ("batch", "instance"),
    "precision": ("auto", "float32", "mixed_float16", "mixed_bfloat16"),
}

#: The Python types a setting's annotation admits, and how an error names them.
TYPES = {"int": int, "float": (int, float), "bool": bool, "str": str,
         "int | None": (int, type(None))}
TYPE_NAMES = {"int": "a whole number", "float": "a finite number",
              "bool": "true or false", "str": "a name",
              "int | None": "a whole number or None"}

#: Settings that say how much to train, not what: a run may be extended to more steps.
LENGTH = ("preset", "epochs", "steps")

#: The range of each numeric setting, a test and how an error says it: what fits in
#: memory (ngf 128: 3 GiB of weights, gradients and Adam's moments) and NumPy's seed
#: (seed + step below 2**32).
RANGES = {
    "image_size": (lambda v: 8 <= v <= 2048, "from 8 to 2048"),
    **dict.fromkeys(("ngf", "ndf"), (lambda v: 1 <= v <= 128, "from 1 to 128")),
    "batch_size": (lambda v: 1 <= v <= 1024, "from 1 to 1024"),
    "n_layers": (lambda v: 0 <= v <= 9, "from 0 to 9"),
    "steps": (lambda v: v is None or 1 <= v < 2**31,
              "a whole number of steps, from 1 to 2**31 - 1"),
    "epochs": (lambda v: 0 < v <= 10**6, "more than 0 and at most 10**6"),
    "lr_decay": (lambda v: 0 <= v < 1, "a share of the steps, from 0 up to 1"),
    "dropout": (lambda v: 0 <= v < 1, "a rate, from 0 up to 1"),
    "l1_weight": (lambda v: 0 <= v <= 10**6, "from 0 to 10**6"),
    "seed": (lambda v: 0 <= v < 2**31, "from 0 to 2**31 - 1"),
}


@dataclasses.dataclass(frozen=True)
class Config:
    """A run's settings, every default the paper's (chapter "Running a run")."""

    preset: str = "paper"  # the preset these settings came from: a label, not a setting
    # The data (chapter "Data")
    image_size: int = 256
    direction: str = "BtoA"  # BtoA: the right half of each A|B file is the input
    # The networks (chapters "The generator" and "The PatchGAN discriminator")
    ngf: int = 64
    ndf: int = 64
    n_layers: int = 3  # PatchGAN depth: 0, 1, 3, 5 give 1, 16, 70, 286 px fields at 256
    skips: bool = True  # the U-Net; False: the encoder-decoder
    dropout: float = 0.5  # in the decoder's first three blocks, on at test time too
    # and two departures from the paper (chapter "Troubleshooting training")
    upsample: str = "transpose"  # "resize": resize-convolution
    norm: str = "batch"  # "instance": InstanceNorm
    # The objective (chapter "The conditional GAN objective")
    l1_weight: float = 100.0  # lambda
    # The schedule (chapter "The train step")
    batch_size: int = 1
    epochs: float = 200  # passes over the training set, when `steps` is not given
    steps: int | None = None  # train steps; `train` fills it in from `epochs`
    lr_decay: float = 0.0  # the last share of the steps, over which the rate falls to 0
    seed: int = 0
    precision: str = "auto"  # a Keras dtype policy (appendix "Scaling up")

    def __post_init__(self):
        for field in dataclasses.fields(self):  # a bad `--set`: named, not a TypeError
            value = getattr(self, field.name)
            wrong_type = not isinstance(value, TYPES[field.type]) or (
                isinstance(value, float) and not math.isfinite(value))  # inf, nan
            if wrong_type or isinstance(value, bool) and field.type != "bool":
                raise ValueError(f"{field.name} must be {TYPE_NAMES[field.type]}, "
                                 f"not {value!r}")
            if field.name in CHOICES and value not in CHOICES[field.name]:
                raise ValueError(f"unknown {field.name} {value!r}; "
                                 f"choose one of {', '.join(CHOICES[field.name])}")
            holds, what = RANGES.get(field.name, (lambda v: True, ""))
            if not holds(value):
                raise ValueError(f"{field.name} must be {what}, not {value!r}")

    def total_steps(self, train_size: int = 400) -> int:
        """`steps`, or the steps of `epochs` passes over `train_size` images."""
        return self.steps or max(
            round(self.epochs * max(train_size // self.batch_size, 1)), 1)

    def differences(self, other: Config) -> list[str]:
        """The settings in which `other` trains another run (its length aside)."""
        return [field.name for field in dataclasses.fields(self)
                if field.name not in LENGTH
                and getattr(self, field.name) != getattr(other, field.name, None)]

    def to_dict(self) -> dict:
        """The settings as a dict of JSON values."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> Config:
        """A Config from `to_dict`'s values, refusing an unknown or missing setting."""
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown setting(s) {', '.join(unknown)}; "
                             "written by a newer p2p? "
                             f"The settings are {', '.join(sorted(known))}.")
        missing = sorted(known - set(values))
        if missing:
            raise ValueError(f"missing setting(s) {', '.join(missing)}")
        return cls(**values)


PRESETS = {
    "paper": Config(preset="paper", lr_decay=0.5),
    "cpu": Config(preset="cpu", image_size=128, ngf=16, ndf=16, n_layers=2, epochs=1.5),
    "book": Config(preset="book", image_size=128, ngf=16, ndf=32, n_layers=2,
                   epochs=75),
    "tiny": Config(preset="tiny", image_size=32, ngf=8, ndf=8, n_layers=1, epochs=1),
}

DESCRIPTIONS = {
    "paper": "The paper's facades setting: 256x256, ngf = ndf = 64, 70x70 PatchGAN, "
             "batch 1, 200 epochs, the learning rate constant for 100 and decaying "
             "linearly to zero over the last 100, as in the official PyTorch code (the "
             "Lua code kept it constant). For a GPU (Colab): about 80,000 steps.",
    "cpu": "A laptop CPU in about a minute: 128x128, ngf = ndf = 16, a 34x34 PatchGAN "
           "(the same share of the image as 70x70 at 256), 1.5 epochs (600 steps).",
    "book": "The book runs (p2p.lab.bookruns), trained once and shipped: 128x128, "
            "ngf = 16, ndf = 32, a 34x34 PatchGAN, 75 epochs (30,000 steps); all four "
            "together in about two hours on 2 CPU cores.",
    "tiny": "For tests: 32x32, ngf = ndf = 8, a 16x16 PatchGAN; seconds per run.",
}


def get_preset(name: str, **settings) -> Config:
    """The preset called `name`, with `settings` replaced (chapter "Running a run")."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return resolve(PRESETS[name], **settings)


def resolve(config: Config | str, **settings) -> Config:
    """A Config from a preset's name or a Config, with `settings` replaced."""
    config = get_preset(config) if isinstance(config, str) else config
    known = {field.name for field in dataclasses.fields(config)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise ValueError(f"unknown setting(s) {', '.join(unknown)}; "
                         f"the settings are {', '.join(sorted(known))}")
    return dataclasses.replace(config, **settings) if settings else config


def read(run_dir, kind: type[Config] = Config) -> Config:
    """The Config of a run folder, from its config.json (chapter "Running a run")."""
    values = read_values(run_dir)
    values.pop("data", None)  # which files the run trained on: checked by `train`
    if kind is Config:
        values.pop("variant", None)  # a lab variant's: its architecture is a Config's
    try:
        return kind.from_dict(values)
    except (ValueError, TypeError) as err:
        raise ValueError(
            f"{Path(run_dir) / 'config.json'}: not a p2p run's config ({err}). "
            "Restore it, or train into a new run folder.") from err


def read_values(run_dir) -> dict:
    """A run folder's config.json as a dict, in today's layout (any p2p's)."""
    from p2p.runtime import resume  # TensorFlow's import waits until a run is read

    defaults = dataclasses.asdict(Config())
    return resume.config_values(Path(run_dir) / "config.json", defaults)
