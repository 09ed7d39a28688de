"""Troubleshooting: the questions learners ask most, each answered by a small experiment.

    python -m p2p troubleshoot --out DIR [--preset cpu] [--steps N] [--seeds 0 1 2]

The experiments that need no training run on a book run, in the chapter itself: test-time modes
(`translations_at_test_time`), D's verdicts and G's gradient (`discriminator_verdicts`), other image sizes
(`rebuilt`, `larger_inputs`), video flicker (`video_flicker`) and the spread of dropout
(`mode_collapse`). The others train short runs (`VARIANTS`, settings of a `Config`);
`run_troubleshooting` trains and scores them with the experiment runner (`p2p.lab.experiments`),
which rewrites results.json after every finished run, so an interrupted runner resumes where it stopped. Explained in the chapters
"Troubleshooting training" and "Troubleshooting your data".
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from PIL import Image

from p2p import data, runs
from p2p.config import Config, get_preset
from p2p.inference import moving_statistics_kept, translate
from p2p.lab import evaluate, facades
from p2p.lab.experiments import Experiment, Job
from p2p.lab.translating import rebuilt, size_multiple  # noqa: F401 (the chapter's names; translate uses them too)
from p2p.lab.variants import configure
from p2p.runtime import files

# Measures -------------------------------------------------------------------------------------------


def scores(outputs, targets) -> dict[str, float]:
    """The measures of a set of outputs: `evaluate.blur_measures` and the checkerboard (chapter "Troubleshooting training")."""
    return {**evaluate.blur_measures(outputs, targets), "checkerboard": evaluate.checkerboard(outputs)}


# Experiments on a trained generator -----------------------------------------------------------------


def translations_at_test_time(generator, inputs, pool: int = 8) -> dict[str, tf.Tensor]:
    """Test inputs five ways: the paper's, pooled, training=False, predict, G(x) (chapter "Troubleshooting training")."""
    return {
        "one at a time (the paper)": translate(generator, inputs),
        f"pooled batches of {pool}": evaluate.in_batches(generator, inputs, pool),
        "training=False": generator(inputs, training=False),
        "generator.predict(x)": tf.constant(generator.predict(inputs, verbose=0)),
        "generator(x)": generator(inputs),
    }


def discriminator_verdicts(generator, discriminator, inputs, targets) -> dict[str, float]:
    """D's verdicts on real and generated pairs, and G's gradient under two GAN losses (chapter "Troubleshooting training").

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


def tile(images, rows: int, columns: int):
    """Images of one size laid out in a rows x columns grid, as one image per grid (chapter "Troubleshooting your data")."""
    images = tf.convert_to_tensor(images)
    per_grid = rows * columns
    grids = [tf.concat([tf.concat(list(images[g + r * columns:g + (r + 1) * columns]), axis=1) for r in range(rows)], axis=0)
             for g in range(0, len(images) - per_grid + 1, per_grid)]
    return tf.stack(grids)


def larger_inputs(generator, inputs, targets, grids=((1, 2), (2, 2))) -> dict[str, dict[str, float]]:
    """Test label maps tiled into larger, non-square images, translated whole by `rebuilt` (chapter "Troubleshooting your data").

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
    """A pan over a label map: size x size crops, each `speed` pixels right of the last (chapter "Troubleshooting your data")."""
    top = (labels.shape[0] - size) // 2
    return data.normalize(np.stack([facades.colorize(labels[top:top + size, t * speed:t * speed + size]) for t in range(frames)]))


def video_flicker(generator, facade: facades.Facade, frames: int = 16, speeds=(0, 1)) -> dict[int, dict[str, float]]:
    """Flicker of videos translated frame by frame: dropout on, off, and training=False (chapter "Troubleshooting your data").

    For each speed (pixels per frame; 0 is a still camera), the label map is drawn wide enough
    for `frames` crops of the generator's size, each `speed` pixels right of the last. Returns
    `flicker` of the input frames and of each way of translating them.
    """
    size, results = generator.input_shape[1], {}
    for speed in speeds:
        inputs = panning_frames(facades.label_map(facade, size + speed * frames), size, frames, speed)
        ways = {"label maps": inputs, "dropout on": translate(generator, inputs),
                "dropout off": translate(generator, inputs, dropout=False), "training=False": generator(inputs, training=False)}
        results[speed] = {name: evaluate.flicker(outputs, speed) for name, outputs in ways.items()}
    return results


def mode_collapse(generator, label_maps, draws: int = 8) -> dict[str, dict[str, float]]:
    """How much G's outputs for a label map vary over dropout draws, against renderings (chapter "Troubleshooting training").

    For each label map: `draws` translations (each with its own dropout masks) and `draws`
    renderings by `p2p.lab.facades.render_photo` with different random generators; the pixel spread
    and colour spread of each set, averaged over the label maps.
    """
    sets = {"G, dropout draws": [], "renderings": []}
    for labels in label_maps:
        inputs = data.normalize(np.repeat(facades.colorize(labels)[None], draws, axis=0))
        sets["G, dropout draws"].append(translate(generator, inputs))
        sets["renderings"].append(data.normalize(np.stack([facades.render_photo(labels, np.random.default_rng(seed))
                                                           for seed in range(draws)])))
    return {name: {"pixel spread": float(np.mean([evaluate.pixel_spread(s) for s in images])),
                   "colour spread": float(np.mean([evaluate.colour_spread(s) for s in images]))}
            for name, images in sets.items()}


def batch_statistics(generator, inputs, targets, batch_size: int = 4) -> dict[str, dict[str, float]]:
    """Test outputs one at a time, in batches of `batch_size`, training=False; no dropout (chapter "Troubleshooting training").

    Only whole batches of the inputs are used. Besides the scores of each way, "change from one
    at a time" is the mean absolute difference of its outputs from one-at-a-time outputs.
    """
    inputs, targets = inputs[:len(inputs) // batch_size * batch_size], targets[:len(inputs) // batch_size * batch_size]
    twin = rebuilt(generator, dropout=False)
    alone = translate(twin, inputs)
    ways = {"one at a time": alone, f"batches of {batch_size}": evaluate.in_batches(twin, inputs, batch_size),
            "training=False": twin(inputs, training=False)}
    return {name: {**scores(outputs, targets), "change from one at a time": float(tf.reduce_mean(tf.abs(outputs - alone)))}
            for name, outputs in ways.items()}


# Experiments that train -----------------------------------------------------------------------------


def misaligned_copy(data_dir, out, shift: int, seed: int = 0) -> Path:
    """A copy of a dataset's training pairs, their A halves (photos) moved `shift` pixels (chapter "Troubleshooting your data").

    Each pair's A half moves by `shift` pixels up, down, left or right, drawn at random per pair,
    its edge pixels repeated into the gap; the B half stays. Written as PNG (no new JPEG loss) into
    out/train, once: a folder already complete for these settings is left as it is. Returns out.
    """
    out, pairs = Path(out), data.list_pairs(Path(data_dir) / "train")
    stamp, settings = out / "misaligned.json", json.dumps({"shift": shift, "seed": seed, "source": data.fingerprint(pairs)})
    if stamp.exists() and stamp.read_text() == settings:
        return out
    rng = np.random.default_rng(seed)
    for (file,) in pairs:  # A|B files
        image = data.decode_rgb(file)
        half = image.shape[1] // 2
        dy, dx = [(-shift, 0), (shift, 0), (0, -shift), (0, shift)][rng.integers(4)]
        padded = np.pad(image[:, :half], ((shift, shift), (shift, shift), (0, 0)), "edge")
        moved = padded[shift - dy:shift - dy + image.shape[0], shift - dx:shift - dx + half]
        pair = Image.fromarray(np.concatenate([moved, image[:, half:]], axis=1))
        files.write_atomically(out / "train" / f"{file.stem}.png", functools.partial(pair.save, format="PNG"))
    stamp.write_text(settings)  # written last: an interrupted copy is redone
    return out


#: The short runs of the chapter, by name: the settings each changes (and `misalign`, pixels for `misaligned_copy`).
VARIANTS = {
    "baseline": {},
    "resize-convolution": {"upsample": "resize"},
    "D learning rate x10": {"disc_lr_scale": 10.0},
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


def run_troubleshooting(out, preset: Config | str = "cpu", *, steps: int | None = None, seeds=(0, 1, 2),
                        progress: bool = True) -> dict:
    """Train and score every variant into `out`, resumably; returns the results (the troubleshooting chapters).

    samples.npz keeps the first test examples of each variant's first seed (uint8); each run's
    "curves" are its metrics.csv: the means of the losses over each logging interval.
    """
    preset = get_preset(preset) if isinstance(preset, str) else preset
    steps = steps or preset.total_steps()
    settings = {"preset": preset.preset, "image_size": preset.image_size, "steps": steps, "seeds": list(seeds)}
    command = f"python -m p2p troubleshoot --out {out} --preset {preset.preset} --steps {steps} --seeds " + \
        " ".join(map(str, seeds))
    experiment = Experiment(out, settings, command=command)
    out, results = experiment.out, experiment.results
    samples_path = out / "samples.npz"
    samples = {}
    if samples_path.exists():
        with np.load(samples_path) as saved:
            samples = {key: saved[key] for key in saved.files}

    data_dir = facades.make_facades(out / "data" / f"facades-{preset.image_size}", size=preset.image_size, progress=progress)
    test_inputs, test_targets = data.example_batch(data_dir / "test", facades.SPLITS["test"], image_size=preset.image_size)
    results["truth"] = {name: {**scores(images, images), "label_colour_share": evaluate.label_colour_share(images)}
                        for name, images in (("real photos", test_targets), ("label maps", test_inputs))}
    samples.update(inputs=data.to_uint8(test_inputs[:SAMPLES]).numpy(), targets=data.to_uint8(test_targets[:SAMPLES]).numpy())
    experiment.save()

    def measure(job, model):
        name = job.key.split(" / seed ")[0]
        inputs, targets = (test_targets, test_inputs) if job.config.direction == "AtoB" else (test_inputs, test_targets)
        keras.utils.set_random_seed(job.config.seed)
        outputs = translate(model.generator, inputs)
        metrics = runs.read_metrics(out / "runs" / job.run / "metrics.csv")
        record = {"variant": name, "seed": job.config.seed, "options": VARIANTS[name], **scores(outputs, targets),
                  "label_colour_share": evaluate.label_colour_share(outputs),
                  "curves": {key: [int(v) if key == "step" else float(v) for v in values] for key, values in metrics.items()}}
        if job.config.batch_size > 1:
            record["test_batching"] = batch_statistics(model.generator, inputs, targets, job.config.batch_size)
        if job.config.seed == seeds[0]:
            samples[name] = data.to_uint8(outputs[:SAMPLES]).numpy()
            files.write_atomically(samples_path, lambda file: np.savez_compressed(file, **samples))
        return record

    def job(name, seed):
        settings = dict(VARIANTS[name])
        shift = settings.pop("misalign", 0)
        train_dir = misaligned_copy(data_dir, out / "data" / f"moved-{preset.image_size}-{shift}", shift) if shift else data_dir
        folder = re.sub(r"[^A-Za-z0-9.]+", "_", name).strip("_") + f"-seed{seed}"
        return Job(f"{name} / seed {seed}", folder, configure(preset, steps=steps, seed=seed, **settings), train_dir)

    jobs = [job(name, seed) for seed in seeds for name in VARIANTS if seed == seeds[0] or name in EVERY_SEED]
    experiment.run(jobs, measure, desc="troubleshooting", progress=progress)
    return results


def summary(results: dict, name: str, key: str) -> tuple[float, float, int]:
    """Mean, standard deviation and count over seeds of one score of one variant (the troubleshooting chapters)."""
    values = [run[key] for run in results["runs"].values() if run["variant"] == name]
    return float(np.mean(values)), float(np.std(values)), len(values)


def format_rows(results: dict, names, keys=("sharpness", "colour_spread", "l1", "checkerboard"), truth="real photos") -> str:
    """A table of variants by scores: the mean, ± the std over seeds where several ran (the troubleshooting chapters).

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
