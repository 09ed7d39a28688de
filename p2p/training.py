"""Training: a Config's model, trained by `fit` into a run folder that survives a kill.

`train` builds the model (`build_model`), places it on the devices
(`p2p.runtime.devices`), and writes and resumes the run folder (`p2p.runs`), guarded by
`p2p.runtime`. Explained in the chapter "Running a run".
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import keras

from p2p import data, runs
from p2p.config import Config, resolve
from p2p.models import Discriminator, Generator
from p2p.optimizers import paper_optimizer
from p2p.pix2pix import Pix2Pix
from p2p.runtime import devices, guards


def build_networks(config: Config,
                   disc_channels: int = 6) -> tuple[keras.Model, keras.Model]:
    """The generator and discriminator of `config`, computing in its precision."""
    outer_policy = keras.mixed_precision.global_policy()
    # the layers take the policy when built
    keras.mixed_precision.set_global_policy(devices.resolve_precision(config.precision))
    try:
        generator = Generator(config.image_size, config.ngf, config.skips,
                              dropout=config.dropout, upsampling=config.upsample,
                              norm=config.norm)
        discriminator = Discriminator(config.image_size, config.ndf, config.n_layers,
                                      in_channels=disc_channels)
    finally:
        keras.mixed_precision.set_global_policy(outer_policy)
    return generator, discriminator


def build_model(config: Config, *, jit_compile: bool | str = "auto") -> Pix2Pix:
    """A compiled Pix2Pix for `config`, both optimizers the paper's Adam."""
    generator, discriminator = build_networks(config)
    model = Pix2Pix(generator, discriminator, l1_weight=config.l1_weight)
    decay = config.lr_decay if config.steps else 0.0  # a decay needs the run's length
    model.compile(gen_optimizer=paper_optimizer(config.steps, decay),
                  disc_optimizer=paper_optimizer(config.steps, decay),
                  jit_compile=devices.resolve_jit_compile(jit_compile))
    return model


def train(data_dir, run_dir, config: Config | str = "cpu", *, log_every: int = 50,
          checkpoint_every: int = 200, progress: bool = True, strategy="default",
          jit_compile="auto", build=build_model, until: int | None = None,
          **settings) -> Pix2Pix:
    """Train, or resume, a run in `run_dir` on the pairs in `data_dir`.

    `config` is a Config or a preset's name, with `settings` replaced (`steps=`,
    `seed=`...; `steps` defaults to the preset's epochs). `until` stops at that step,
    the schedule still spanning `steps`; `build` makes the model (the lab's variants
    bring their own). Nothing is written before the options, the data and the networks
    are checked. README.md, "What it promises", lists what the run folder survives
    (`p2p.runs.open_run`).
    """
    config = resolve(config, **settings)
    guards.check_intervals(log_every, checkpoint_every)
    guards.check_run_folder(run_dir)
    # made before any TensorFlow operation, as the multi-worker strategy needs
    strategy = devices.make_strategy(strategy or "default")
    train_dir = data.split_folder(data_dir, "train")
    pairs = data.list_pairs(train_dir)
    guards.check_batch(config.batch_size, pairs, data_dir,
                       strategy.num_replicas_in_sync)
    config = dataclasses.replace(config, steps=config.total_steps(len(pairs)),
                                 precision=devices.resolve_precision(config.precision))
    steps = min(until or config.steps, config.steps)  # where this call stops
    data_identity = {"path": str(Path(data_dir).resolve()),
                     "fingerprint": data.fingerprint(pairs)}
    keras.utils.set_random_seed(config.seed)
    with strategy.scope():  # built before any write: a size G cannot take is refused
        model = build(config, jit_compile=jit_compile)

    with runs.open_run(run_dir, model, config, data_identity, steps, strategy) as run:
        if run.step < steps:
            keras.utils.set_random_seed(config.seed + run.step)  # new masks on resume
            dataset = data.paired_dataset(
                pairs, image_size=config.image_size,
                direction=config.direction, seed=config.seed + run.step,
                batch_size=config.batch_size * strategy.num_replicas_in_sync,
            ).repeat()
            samples = data.example_batch(data.split_folder(data_dir, "val", "train"),
                                         image_size=config.image_size,
                                         direction=config.direction)
            runs.fit(model, run, dataset, steps, samples, strategy, log_every=log_every,
                     checkpoint_every=checkpoint_every, progress=progress)
    return model
