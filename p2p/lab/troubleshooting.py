"""Troubleshooting: the questions learners ask most, each answered by a small experiment.

    python -m p2p.troubleshooting --out DIR [--preset cpu] [--steps N] [--seeds 0 1 2]

The experiments that need no training run on a book run, in the chapter itself: test-time modes
(`translations_at_test_time`), D's verdicts and G's gradient (`discriminator_verdicts`), other image sizes
(`rebuilt`, `larger_inputs`), video flicker (`video_flicker`) and the spread of dropout
(`mode_collapse`). The others train short runs (`VARIANTS`), each built from `Generator`,
`Discriminator` and `Pix2Pix` and fitted on `p2p.data.paired_dataset` (`train_variant`);
`run_troubleshooting` trains and scores them and rewrites results.json, with its provenance, after
every finished run, so an interrupted runner resumes where it stopped. Explained in the chapter
"Troubleshooting".
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import sys
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras import layers
from PIL import Image
from tqdm.auto import tqdm

from p2p import data, devices, evaluate, facades, presets, records
from p2p.inference import moving_statistics_kept, translate
from p2p.models import Discriminator, Generator
from p2p.optimizers import PAPER_ADAM, FusedAdam
from p2p.pix2pix import METRICS, Pix2Pix

# Measures -------------------------------------------------------------------------------------------


def checkerboard(images) -> float:
    """Mean amplitude of the two-pixel checkerboard pattern in [-1, 1] images (chapter "Troubleshooting").

    Over every 2x2 block and channel, |x[0, 0] - x[0, 1] - x[1, 0] + x[1, 1]| / 4: the amplitude a
    for a pure checkerboard of +a and -a, zero for ramps and flat areas.
    """
    x = np.asarray(images, np.float32)
    x = x[:, : x.shape[1] // 2 * 2, : x.shape[2] // 2 * 2]
    return float(np.mean(np.abs(x[:, ::2, ::2] - x[:, ::2, 1::2] - x[:, 1::2, ::2] + x[:, 1::2, 1::2])) / 4)


def flicker(frames, shift: int = 1) -> float:
    """Mean change between consecutive frames panning `shift` pixels per frame, the motion undone (chapter "Troubleshooting")."""
    frames = np.asarray(frames, np.float32)
    return float(np.mean(np.abs(frames[1:, :, :frames.shape[2] - shift] - frames[:-1, :, shift:])))


def pixel_spread(draws) -> float:
    """Standard deviation of each pixel over several images of one scene, averaged over pixels (chapter "Troubleshooting")."""
    return float(np.mean(np.std(np.asarray(draws, np.float32), axis=0)))


def label_colour_share(images, tolerance: float = 0.15) -> float:
    """Share of pixels within `tolerance` (per channel, [-1, 1] units) of a label colour (chapter "Troubleshooting")."""
    colours = tf.constant(facades.COLORS, tf.float32) / 127.5 - 1.0
    near = [tf.reduce_min(tf.reduce_max(tf.abs(tf.cast(image, tf.float32)[..., None, :] - colours), -1), -1) < tolerance
            for image in images]  # one image at a time: (height, width, 12, 3) floats each
    return float(tf.reduce_mean(tf.cast(tf.stack(near), tf.float32)))


def scores(outputs, targets) -> dict[str, float]:
    """The chapter's measures of a set of outputs: `evaluate.blur_measures` and the checkerboard (chapter "Troubleshooting")."""
    return {**evaluate.blur_measures(outputs, targets), "checkerboard": checkerboard(outputs)}


# Experiments on a trained generator -----------------------------------------------------------------


def in_batches(generator, inputs, batch_size: int):
    """`generator(batch, training=True)` over consecutive batches: statistics pooled per batch (chapter "Troubleshooting").

    The generator's BatchNorm moving averages are left as they were.
    """
    with moving_statistics_kept(generator):
        return tf.concat([generator(inputs[i:i + batch_size], training=True) for i in range(0, len(inputs), batch_size)], 0)


def translations_at_test_time(generator, inputs, pool: int = 8) -> dict[str, tf.Tensor]:
    """Test inputs translated five ways: the paper's, pooled, training=False, predict, G(x) (chapter "Troubleshooting")."""
    return {
        "one at a time (the paper)": translate(generator, inputs),
        f"pooled batches of {pool}": in_batches(generator, inputs, pool),
        "training=False": generator(inputs, training=False),
        "generator.predict(x)": tf.constant(generator.predict(inputs, verbose=0)),
        "generator(x)": generator(inputs),
    }


def discriminator_verdicts(generator, discriminator, inputs, targets) -> dict[str, float]:
    """D's verdicts on real and generated pairs, and the size of G's gradient under two GAN losses (chapter "Troubleshooting").

    Each pair goes through D alone in training mode, as in a training step at batch size 1 (D's
    moving averages are left as they were). Returns D's mean probability of "real" on the patches
    of real pairs and of generated pairs, the share of generated patches it calls fake, and the
    mean size of the derivative of G's loss with respect to D's logit on generated patches: 1 - D
    for the non-saturating -log D that pix2pix uses, D for the saturating log(1 - D) of the
    minimax objective.
    """
    outputs = translate(generator, inputs)

    def probabilities(images):
        return tf.sigmoid(tf.concat([discriminator(tf.concat([inputs[i:i + 1], images[i:i + 1]], -1), training=True)
                                     for i in range(len(inputs))], 0))

    with moving_statistics_kept(discriminator):
        real, fake = probabilities(targets), probabilities(outputs)
    return {"p_real_on_real": float(tf.reduce_mean(real)), "p_real_on_generated": float(tf.reduce_mean(fake)),
            "generated_patches_called_fake": float(tf.reduce_mean(tf.cast(fake < 0.5, tf.float32))),
            "gradient_non_saturating": float(tf.reduce_mean(1.0 - fake)), "gradient_saturating": float(tf.reduce_mean(fake))}


def size_multiple(generator) -> int:
    """What every side of a generator's input must be a multiple of: 2 ** its encoder layers (chapter "Troubleshooting")."""
    return math.prod(layer.strides[0] for layer in generator.layers if isinstance(layer, layers.Conv2D))


def rebuilt(generator, height: int | None = None, width: int | None = None, *, dropout: bool = True) -> keras.Model:
    """The generator's layers and weights on height x width inputs, and without dropout if asked (chapter "Troubleshooting").

    Every layer is a convolution, a normalisation or elementwise, so the same weights apply to any
    size whose sides are multiples of `size_multiple(generator)`; the bottleneck is then larger
    than 1x1. This is how the paper applies a generator trained at 256x256 to 512x512 maps.
    """
    height, width = height or generator.input_shape[1], width or generator.input_shape[2]
    multiple = size_multiple(generator)
    if height % multiple or width % multiple:
        fit = lambda side: max(round(side / multiple), 1) * multiple
        raise ValueError(f"a {height}x{width} input does not fit this generator: its encoder halves the image "
                         f"{int(math.log2(multiple))} times, so both sides must be multiples of {multiple}. "
                         f"Resize, pad or crop the image to {fit(height)}x{fit(width)}.")

    def clone(layer):
        if isinstance(layer, layers.Dropout) and not dropout:
            return layers.Dropout(0.0, name=layer.name)
        return layer.__class__.from_config(layer.get_config())

    model = keras.models.clone_model(generator, input_tensors=keras.Input((height, width, generator.input_shape[-1])),
                                     clone_function=clone)
    model.set_weights(generator.get_weights())
    return model


def tile(images, rows: int, columns: int):
    """Images of one size laid out in a rows x columns grid, as one image per grid (chapter "Troubleshooting")."""
    images = tf.convert_to_tensor(images)
    per_grid = rows * columns
    grids = [tf.concat([tf.concat(list(images[g + r * columns:g + (r + 1) * columns]), axis=1) for r in range(rows)], axis=0)
             for g in range(0, len(images) - per_grid + 1, per_grid)]
    return tf.stack(grids)


def larger_inputs(generator, inputs, targets, grids=((1, 2), (2, 2))) -> dict[str, dict[str, float]]:
    """Test label maps tiled into larger, non-square images, translated whole by `rebuilt` (chapter "Troubleshooting").

    For each (rows, columns) grid: the scores of the tiled outputs, against the same tiles
    translated one by one at the trained size. Dropout is off, so only the size differs.
    """
    size = generator.input_shape[1]
    alone = translate(generator, inputs, dropout=False)
    results = {}
    for rows, columns in grids:
        big = rebuilt(generator, rows * size, columns * size)
        results[f"{rows * size}x{columns * size} whole"] = scores(translate(big, tile(inputs, rows, columns), dropout=False),
                                                                  tile(targets, rows, columns))
        results[f"{rows * size}x{columns * size} tile by tile"] = scores(tile(alone, rows, columns), tile(targets, rows, columns))
    return results


def panning_frames(labels, size: int, frames: int, speed: int = 1) -> tf.Tensor:
    """A camera panning over a label map: size x size crops, each `speed` pixels right of the last (chapter "Troubleshooting")."""
    top = (labels.shape[0] - size) // 2
    return data.normalize(np.stack([facades.colorize(labels[top:top + size, t * speed:t * speed + size]) for t in range(frames)]))


def video_flicker(generator, facade: facades.Facade, frames: int = 16, speeds=(0, 1)) -> dict[int, dict[str, float]]:
    """Flicker of videos translated frame by frame: dropout on, off, and training=False (chapter "Troubleshooting").

    For each speed (pixels per frame; 0 is a still camera), the label map is drawn wide enough
    for `frames` crops of the generator's size, each `speed` pixels right of the last. Returns
    `flicker` of the input frames and of each way of translating them.
    """
    size, results = generator.input_shape[1], {}
    for speed in speeds:
        inputs = panning_frames(facades.label_map(facade, size + speed * frames), size, frames, speed)
        ways = {"label maps": inputs, "dropout on": translate(generator, inputs),
                "dropout off": translate(generator, inputs, dropout=False), "training=False": generator(inputs, training=False)}
        results[speed] = {name: flicker(outputs, speed) for name, outputs in ways.items()}
    return results


def mode_collapse(generator, label_maps, draws: int = 8) -> dict[str, dict[str, float]]:
    """How much G's outputs for one label map vary over dropout draws, against renderings of it (chapter "Troubleshooting").

    For each label map: `draws` translations (each with its own dropout masks) and `draws`
    renderings by `p2p.facades.render_photo` with different random generators; the pixel spread
    and colour spread of each set, averaged over the label maps.
    """
    sets = {"G, dropout draws": [], "renderings": []}
    for labels in label_maps:
        inputs = data.normalize(np.repeat(facades.colorize(labels)[None], draws, axis=0))
        sets["G, dropout draws"].append(translate(generator, inputs))
        sets["renderings"].append(data.normalize(np.stack([facades.render_photo(labels, np.random.default_rng(seed))
                                                           for seed in range(draws)])))
    return {name: {"pixel spread": float(np.mean([pixel_spread(s) for s in images])),
                   "colour spread": float(np.mean([evaluate.colour_spread(s) for s in images]))}
            for name, images in sets.items()}


def batch_statistics(generator, inputs, targets, batch_size: int = 4) -> dict[str, dict[str, float]]:
    """Test outputs one at a time, in batches of `batch_size` and with training=False, dropout off (chapter "Troubleshooting").

    Only whole batches of the inputs are used. Besides the scores of each way, "change from one
    at a time" is the mean absolute difference of its outputs from one-at-a-time outputs.
    """
    inputs, targets = inputs[:len(inputs) // batch_size * batch_size], targets[:len(inputs) // batch_size * batch_size]
    twin = rebuilt(generator, dropout=False)
    alone = translate(twin, inputs)
    ways = {"one at a time": alone, f"batches of {batch_size}": in_batches(twin, inputs, batch_size),
            "training=False": twin(inputs, training=False)}
    return {name: {**scores(outputs, targets), "change from one at a time": float(tf.reduce_mean(tf.abs(outputs - alone)))}
            for name, outputs in ways.items()}


# Experiments that train -----------------------------------------------------------------------------


def misaligned_copy(data_dir, out, shift: int, seed: int = 0) -> Path:
    """A copy of a dataset's training pairs with their A halves (photos) moved `shift` pixels (chapter "Troubleshooting").

    Each pair's A half moves by `shift` pixels up, down, left or right, drawn at random per pair,
    its edge pixels repeated into the gap; the B half stays. Written as PNG (no new JPEG loss) into
    out/train, once: a folder already complete for these settings is left as it is. Returns out.
    """
    out, files = Path(out), data.list_pairs(Path(data_dir) / "train")
    stamp, settings = out / "misaligned.json", json.dumps({"shift": shift, "seed": seed, "source": data.fingerprint(files)})
    if stamp.exists() and stamp.read_text() == settings:
        return out
    rng = np.random.default_rng(seed)
    for file in files:
        image = data.decode_rgb(file)
        half = image.shape[1] // 2
        dy, dx = [(-shift, 0), (shift, 0), (0, -shift), (0, shift)][rng.integers(4)]
        padded = np.pad(image[:, :half], ((shift, shift), (shift, shift), (0, 0)), "edge")
        moved = padded[shift - dy:shift - dy + image.shape[0], shift - dx:shift - dx + half]
        pair = Image.fromarray(np.concatenate([moved, image[:, half:]], axis=1))
        records.write_atomically(out / "train" / f"{file.stem}.png", functools.partial(pair.save, format="PNG"))
    stamp.write_text(settings)  # written last: an interrupted copy is redone
    return out


def train_variant(data_dir, preset: presets.Preset, *, steps: int, seed: int = 0, batch_size: int | None = None,
                  direction: str = "BtoA", upsample: str = "transpose", norm: str = "batch", l1_weight: float = 100.0,
                  reconstruction: str = "l1", disc_lr_factor: float = 1.0, log_every: int = 50):
    """A Pix2Pix with these options trained `steps` steps on data_dir/train, and its loss curves (chapter "Troubleshooting").

    `disc_lr_factor` multiplies D's learning rate. The curves are the means of `METRICS` over
    each logging interval ("step" holds the interval's last step).
    """
    keras.utils.set_random_seed(seed)
    generator = Generator(preset.image_size, preset.ngf, upsample=upsample, norm=norm)
    discriminator = Discriminator(preset.image_size, preset.ndf, preset.n_layers)
    model = Pix2Pix(generator, discriminator, l1_weight=l1_weight, reconstruction=reconstruction)
    model.compile(disc_optimizer=FusedAdam(**{**PAPER_ADAM, "learning_rate": PAPER_ADAM["learning_rate"] * disc_lr_factor}),
                  jit_compile=devices.resolve_jit_compile(preset.jit_compile))
    dataset = data.paired_dataset(data.split_folder(data_dir, "train"), image_size=preset.image_size, direction=direction,
                                  batch_size=batch_size or preset.batch_size, seed=seed).repeat()
    log_every = math.gcd(steps, log_every)  # whole intervals: exactly `steps` steps
    history = model.fit(dataset, steps_per_epoch=log_every, epochs=steps // log_every, verbose=0, shuffle=False).history
    curves = {"step": [log_every * (n + 1) for n in range(steps // log_every)]}
    return model, {**curves, **{name: [float(v) for v in history[name]] for name in METRICS}}


#: The short runs of the chapter, by name: `train_variant` options (and `misalign`, pixels for `misaligned_copy`).
VARIANTS = {
    "baseline": {},
    "resize-convolution": {"upsample": "resize"},
    "D learning rate x10": {"disc_lr_factor": 10.0},
    "lambda 0 (no L1)": {"l1_weight": 0.0},
    "lambda 1": {"l1_weight": 1.0},
    "lambda 10": {"l1_weight": 10.0},
    "lambda 1000": {"l1_weight": 1000.0},
    "L2, lambda 100": {"reconstruction": "l2"},
    "batch 4, BatchNorm": {"batch_size": 4},
    "batch 4, InstanceNorm": {"batch_size": 4, "norm": "instance"},
    "photos moved 2 px": {"misalign": 2},
    "photos moved 8 px": {"misalign": 8},
    "AtoB (wrong direction)": {"direction": "AtoB"},
}

#: The variants trained for every seed (the checkerboard comparison); the others train for the first seed only.
EVERY_SEED = ("baseline", "resize-convolution")

#: How many test examples of each variant samples.npz keeps.
SAMPLES = 3


def run_troubleshooting(out, preset: presets.Preset | str = "cpu", *, steps: int | None = None, seeds=(0, 1, 2),
                        progress: bool = True) -> dict:
    """Train and score every variant into `out`, resumably; returns the results (chapter "Troubleshooting").

    results.json is rewritten after every finished run, with the provenance and the CPU and wall
    time spent so far; runs already in it are skipped. samples.npz keeps the first test examples
    of each variant's first seed (uint8).
    """
    preset = presets.get(preset) if isinstance(preset, str) else preset
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results_path, samples_path = out / "results.json", out / "samples.npz"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    config = {"preset": preset.name, "image_size": preset.image_size, "steps": steps or preset.steps(), "seeds": list(seeds)}
    if results.get("config", config) != config:
        raise ValueError(f"{results_path}: made with other settings {results['config']}; use another --out, or delete it")
    results.update(config=config, provenance=records.provenance(command=_command(out, preset, steps, seeds)))
    for key in ("wall_seconds", "cpu_seconds"):
        results.setdefault(key, 0.0)
    results.setdefault("runs", {})
    samples = {}
    if samples_path.exists():
        with np.load(samples_path) as saved:
            samples = {key: saved[key] for key in saved.files}
    clocks = [time.monotonic(), time.process_time()]

    def checkpoint_results():
        now = [time.monotonic(), time.process_time()]
        results["wall_seconds"] += now[0] - clocks[0]
        results["cpu_seconds"] += now[1] - clocks[1]
        clocks[:] = now
        records.write_atomically(samples_path, lambda file: np.savez_compressed(file, **samples))
        records.write_json(results_path, results)

    data_dir = facades.make_facades(out / "data" / f"facades-{preset.image_size}", size=preset.image_size, progress=progress)
    test_inputs, test_targets = data.example_batch(data_dir / "test", facades.SPLITS["test"], image_size=preset.image_size)
    results["truth"] = {name: {**scores(images, images), "label_colour_share": label_colour_share(images)}
                        for name, images in (("real photos", test_targets), ("label maps", test_inputs))}
    samples.update(inputs=data.to_uint8(test_inputs[:SAMPLES]).numpy(), targets=data.to_uint8(test_targets[:SAMPLES]).numpy())
    checkpoint_results()

    jobs = [(name, seed) for seed in seeds for name in VARIANTS if seed == seeds[0] or name in EVERY_SEED]
    for name, seed in tqdm(jobs, desc="troubleshooting", unit="run", disable=not progress):
        key = f"{name} / seed {seed}"
        if key in results["runs"]:
            continue
        options = dict(VARIANTS[name])
        shift = options.pop("misalign", 0)
        train_dir = misaligned_copy(data_dir, out / "data" / f"moved-{preset.image_size}-{shift}", shift) if shift else data_dir
        inputs, targets = (test_targets, test_inputs) if options.get("direction") == "AtoB" else (test_inputs, test_targets)
        started = [time.monotonic(), time.process_time()]
        model, curves = train_variant(train_dir, preset, steps=config["steps"], seed=seed, **options)
        keras.utils.set_random_seed(seed)
        outputs = translate(model.generator, inputs)
        record = {"variant": name, "seed": seed, "options": VARIANTS[name], **scores(outputs, targets),
                  "label_colour_share": label_colour_share(outputs), "curves": curves,
                  "train_wall_seconds": time.monotonic() - started[0], "train_cpu_seconds": time.process_time() - started[1]}
        if options.get("batch_size", 1) > 1:
            record["test_batching"] = batch_statistics(model.generator, inputs, targets, options["batch_size"])
        results["runs"][key] = record
        if seed == seeds[0]:
            samples[name] = data.to_uint8(outputs[:SAMPLES]).numpy()
        checkpoint_results()
    return results


def _command(out, preset: presets.Preset, steps, seeds) -> str:
    """The command line that makes these results."""
    return (f"python -m p2p.troubleshooting --out {out} --preset {preset.name}" + (f" --steps {steps}" if steps else "")
            + " --seeds " + " ".join(str(s) for s in seeds))


def summary(results: dict, name: str, key: str) -> tuple[float, float, int]:
    """Mean, standard deviation and count over seeds of one score of one variant (chapter "Troubleshooting")."""
    values = [run[key] for run in results["runs"].values() if run["variant"] == name]
    return float(np.mean(values)), float(np.std(values)), len(values)


def format_rows(results: dict, names, keys=("sharpness", "colour_spread", "l1", "checkerboard"), truth="real photos") -> str:
    """A table of variants by scores: the mean, ± the std over seeds where several ran (chapter "Troubleshooting").

    The first row is the scores of `truth`: "real photos" or "label maps" (for the AtoB run).
    """
    lines = [f"{'':34}" + "".join(f"{key.replace('_', ' '):>16}" for key in keys)]
    lines.append(f"{truth:34}" + "".join(f"{results['truth'][truth][key]:>16.3f}" for key in keys))
    for name in names:
        rows = [summary(results, name, key) for key in keys]
        seeds = rows[0][2]
        label = f"{name}, {seeds} seeds" if seeds > 1 else name
        cells = (f"{mean:>8.3f} ± {std:.3f}" if seeds > 1 else f"{mean:>16.3f}" for mean, std, _ in rows)
        lines.append(f"{label:34}" + "".join(cells))
    return "\n".join(lines)


def main(argv=None) -> int:
    """`python -m p2p.troubleshooting --out DIR ...`: run the training experiments (chapter "Troubleshooting")."""
    parser = argparse.ArgumentParser(prog="python -m p2p.troubleshooting", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="results folder; an existing one is resumed")
    parser.add_argument("--preset", default="cpu", choices=list(presets.PRESETS))
    parser.add_argument("--steps", type=int, help="train steps per run (default: the preset's epochs)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args(argv)
    devices.use_measured_thread_pools(args.preset, verbose=True)
    results = run_troubleshooting(args.out, args.preset, steps=args.steps, seeds=args.seeds)
    print(format_rows(results, VARIANTS))
    print(f"{results['cpu_seconds'] / 60:.1f} CPU minutes, {results['wall_seconds'] / 60:.1f} minutes in all")
    print(args.out / "results.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
