"""A run's settings in one frozen dataclass, and the named presets (chapter "The training loop").

A `Config` holds every setting that changes what a run trains; two runs are the same when their
Configs are equal (`differences`). How often a run logs or checkpoints is not a setting.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

CHOICES = {
    "direction": ("BtoA", "AtoB"),
    "upsample": ("transpose", "resize"),
    "norm": ("batch", "instance"),
    "precision": ("auto", "float32", "mixed_float16", "mixed_bfloat16"),
    "gan_update": ("sequential", "simultaneous"),
    "reconstruction": ("l1", "l2"),
}

#: The Python types a setting's annotation admits, and how an error names them.
TYPES = {"int": int, "float": (int, float), "bool": bool, "str": str, "int | None": (int, type(None))}
TYPE_NAMES = {"int": "a whole number", "float": "a number", "bool": "true or false", "str": "a name",
              "int | None": "a whole number or None"}

#: Settings that say how much to train, not what: a run may be extended to more steps.
LENGTH = ("preset", "epochs", "steps")

#: The range of each numeric setting: a test, and how an error says it.
RANGES = {
    **dict.fromkeys(("image_size", "ngf", "ndf", "batch_size"), (lambda v: v >= 1, "a whole number, at least 1")),
    "n_layers": (lambda v: v >= 0, "0 or more"),
    "steps": (lambda v: v is None or v >= 1, "a whole number of steps, at least 1"),
    "epochs": (lambda v: v > 0, "more than 0"),
    "lr_decay": (lambda v: 0 <= v < 1, "a share of the steps, from 0 up to 1"),
    **dict.fromkeys(("l1_weight", "gan_weight"), (lambda v: v >= 0, "0 or more")),
    "disc_lr_scale": (lambda v: v > 0, "more than 0"),
    "seed": (lambda v: 0 <= v < 2**31, "from 0 to 2**31 - 1"),  # seed + step seeds NumPy (< 2**32)
}


@dataclasses.dataclass(frozen=True)
class Config:
    """A run's settings, every default the paper's (chapter "The training loop")."""

    preset: str = "paper"  # the preset these settings started from: a label, not a setting
    # The data (chapter "Data")
    image_size: int = 256
    direction: str = "BtoA"  # BtoA: the right half of each A|B file is the input (the facades' label maps)
    # The networks (chapters "The generator" and "The PatchGAN discriminator")
    ngf: int = 64
    ndf: int = 64
    n_layers: int = 3  # PatchGAN depth: 0, 1, 3, 5 give 1x1, 16x16, 70x70, 286x286 fields at 256 px
    skips: bool = True  # the U-Net; False: the encoder-decoder
    upsample: str = "transpose"  # the decoder's upsampling; "resize": resize-convolution (chapter "Troubleshooting training")
    norm: str = "batch"  # the generator's normalisation; "instance": InstanceNorm (chapter "Troubleshooting training")
    # The objective (chapter "The conditional GAN objective")
    l1_weight: float = 100.0  # lambda
    # The schedule
    batch_size: int = 1
    epochs: float = 200  # passes over the training set, when `steps` is not given
    steps: int | None = None  # train steps; `train` fills it in from `epochs`
    lr_decay: float = 0.0  # the last share of the steps over which the learning rate falls linearly to zero
    seed: int = 0
    precision: str = "auto"  # a Keras dtype policy; `train` resolves "auto" for the hardware (appendix "Scaling up")
    # The variants the lab measures against the paper (p2p.lab.variants); these defaults are the paper's
    gan_weight: float = 1.0  # 0: the L1-only ablation
    conditional: bool = True  # False: D sees the output alone (the "GAN" ablation)
    gan_update: str = "sequential"  # "simultaneous": G's loss from D's verdict before D's update (the TF tutorial)
    reconstruction: str = "l1"  # "l2": lambda weighs the mean squared error
    disc_lr_scale: float = 1.0  # multiplies D's learning rate

    def __post_init__(self):
        for field in dataclasses.fields(self):  # `--set l1_weight=abc` or a hand-edited config.json: named, not a TypeError
            value = getattr(self, field.name)
            if not isinstance(value, TYPES[field.type]) or isinstance(value, bool) and field.type != "bool":
                raise ValueError(f"{field.name} must be {TYPE_NAMES[field.type]}, not {value!r}")
        for name, choices in CHOICES.items():
            if getattr(self, name) not in choices:
                raise ValueError(f"unknown {name} {getattr(self, name)!r}; choose one of {', '.join(choices)}")
        for name, (holds, what) in RANGES.items():
            if not holds(getattr(self, name)):
                raise ValueError(f"{name} must be {what}, not {getattr(self, name)!r}")

    def total_steps(self, train_size: int = 400) -> int:
        """`steps`, or `epochs` passes over `train_size` images in batches of `batch_size`."""
        return self.steps or int(round(self.epochs * max(train_size // self.batch_size, 1)))

    def differences(self, other: Config) -> list[str]:
        """The settings in which `other` trains a different run from this one (the run's length aside)."""
        return [field.name for field in dataclasses.fields(self)
                if field.name not in LENGTH and getattr(self, field.name) != getattr(other, field.name)]

    def variant_settings(self) -> dict:
        """The settings of the lab's variants that differ from the paper's, which `p2p.Pix2Pix` does not train."""
        paper = Config()
        return {name: getattr(self, name) for name in ("gan_weight", "conditional", "gan_update", "reconstruction",
                                                       "disc_lr_scale") if getattr(self, name) != getattr(paper, name)}

    def to_dict(self) -> dict:
        """The settings as a dict of JSON values."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> Config:
        """A Config from `to_dict`'s values or an earlier p2p's config.json; an unknown or missing setting is refused."""
        earlier = isinstance(values.get("preset"), dict)  # the layout before Config: the preset, then the model options
        if earlier:
            preset, model = values["preset"], values.get("model", {})
            values = {**{k: v for k, v in preset.items() if k not in ("name", "description", "jit_compile")},
                      "preset": preset.get("name", "custom"), **model,
                      **{k: values[k] for k in ("direction", "seed", "steps", "precision") if k in values}}
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown setting(s) {', '.join(unknown)}; written by a newer p2p? "
                             f"The settings are {', '.join(sorted(known))}.")
        if not earlier:  # to_dict's layout has every setting: one missing means the file is incomplete
            missing = sorted(known - set(values))
            if missing:
                raise ValueError(f"missing setting(s) {', '.join(missing)}")
        return cls(**values)


PRESETS = {
    "paper": Config(preset="paper", lr_decay=0.5),
    "cpu": Config(preset="cpu", image_size=128, ngf=16, ndf=16, n_layers=2, epochs=1.5),
    "book": Config(preset="book", image_size=128, ngf=16, ndf=32, n_layers=2, epochs=75),
    "tiny": Config(preset="tiny", image_size=32, ngf=8, ndf=8, n_layers=1, epochs=1),
}

DESCRIPTIONS = {
    "paper": "The paper's facades setting: 256x256, ngf = ndf = 64, 70x70 PatchGAN, batch 1, 200 epochs, the learning "
             "rate constant for 100 and decaying linearly to zero over the last 100, as in the official PyTorch code "
             "(the Lua code kept it constant). For a GPU (Colab): about 80,000 steps.",
    "cpu": "A laptop CPU in about a minute: 128x128, ngf = ndf = 16, a 34x34 PatchGAN (the same share of the image as "
           "70x70 at 256), 1.5 epochs (600 steps).",
    "book": "The book runs (p2p.lab.bookruns), trained once and shipped: 128x128, ngf = 16, ndf = 32, a 34x34 PatchGAN, "
            "75 epochs (30,000 steps); all four together in about two hours on 2 CPU cores.",
    "tiny": "For tests: 32x32, ngf = ndf = 8, a 16x16 PatchGAN; seconds per run.",
}


def get_preset(name: str, **settings) -> Config:
    """The preset called `name`, with `settings` replaced (chapter "The training loop")."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return resolve(PRESETS[name], **settings)


def resolve(config: Config | str, **settings) -> Config:
    """A Config from a preset's name or a Config, with `settings` replaced (chapter "The training loop")."""
    config = get_preset(config) if isinstance(config, str) else config
    known = {field.name for field in dataclasses.fields(Config)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise ValueError(f"unknown setting(s) {', '.join(unknown)}; the settings are {', '.join(sorted(known))}")
    return dataclasses.replace(config, **settings) if settings else config


def read(run_dir) -> Config:
    """The Config of a run folder, from its config.json (chapter "The training loop")."""
    path = Path(run_dir) / "config.json"
    if not path.exists():
        raise FileNotFoundError(f"{run_dir}: not a run folder (no config.json); train one with `python -m p2p train`.")
    try:
        values = json.loads(path.read_text())
        if not isinstance(values, dict):
            raise ValueError("not a JSON object")
        values.pop("data", None)  # which files a run trained on: kept beside the settings, checked by `train`
        return Config.from_dict(values)
    except (ValueError, TypeError) as err:
        raise ValueError(f"{path}: not a p2p run's config ({err}). Restore it, or train into a new run folder.") from err
