"""The paper's three ablation tables (loss, generator, discriminator), re-run on the procedural facades.

    python -m p2p ablate --out DIR [--preset cpu] [--steps N] [--seeds 0 1]

Every variant is trained with `p2p.training.train` for each seed, then scored on the test split
with the FCN-score and L1 / PSNR / SSIM. results.json is rewritten after every finished run,
with its provenance, so an interrupted ablation resumes where it stopped (an unfinished training
run resumes from its checkpoint). Explained in the chapter "Reproducing the paper".
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import keras
import numpy as np
from tqdm.auto import tqdm

from p2p import data, evaluate, facades, presets, records, runs, training
from p2p.models import Discriminator, receptive_field

#: The paper's FCN-scores on Cityscapes (per-pixel acc, per-class acc, class IoU); None where not reported.
PAPER = {
    "loss": {"L1": (0.42, 0.15, 0.11), "GAN": (0.22, 0.05, 0.01), "cGAN": (0.57, 0.22, 0.16),
             "L1+GAN": (0.64, 0.20, 0.15), "L1+cGAN": (0.66, 0.23, 0.17), "ground truth": (0.80, 0.26, 0.21)},
    "generator": {"encoder-decoder L1": (0.35, None, 0.08), "encoder-decoder L1+cGAN": (0.29, None, 0.05),
                  "U-Net L1": (0.48, None, 0.13), "U-Net L1+cGAN": (0.55, None, 0.14)},
    "discriminator": {"1x1": (0.39, 0.15, 0.10), "16x16": (0.65, 0.21, 0.17), "70x70": (0.66, 0.23, 0.17),
                      "286x286": (0.42, 0.16, 0.11)},
}

#: Receptive fields of the paper's discriminators at 256x256, matched by share of the image.
PAPER_FIELDS = {"1x1": 1, "16x16": 16, "70x70": 70, "286x286": 286}


def patch_depths(image_size: int) -> dict[str, int]:
    """For each of the paper's discriminators, the n_layers whose field covers the closest share of image_size."""
    fields = {}
    for n in range(0, 8):
        try:
            fields[n] = receptive_field(Discriminator(image_size, ndf=1, n_layers=n))
        except ValueError:  # too deep for this image size
            break
    return {name: min(fields, key=lambda n: abs(math.log(fields[n] / image_size) - math.log(paper / 256)))
            for name, paper in PAPER_FIELDS.items()}


def variants(preset: presets.Preset) -> dict[str, dict]:
    """Every model the three tables need, by name, with its `build_model` options (shared rows trained once)."""
    depths = patch_depths(preset.image_size)
    runs = {
        "L1": {"gan_weight": 0.0},
        "GAN": {"l1_weight": 0.0, "conditional": False},
        "cGAN": {"l1_weight": 0.0},
        "L1+GAN": {"conditional": False},
        "L1+cGAN": {"n_layers": depths["70x70"]},
        "encoder-decoder L1": {"skips": False, "gan_weight": 0.0},
        "encoder-decoder L1+cGAN": {"skips": False},
    }
    for name in ("1x1", "16x16", "286x286"):
        runs[f"D {name}"] = {"n_layers": depths[name]}
    return runs


def table_rows(preset: presets.Preset) -> dict[str, dict[str, str]]:
    """Each table's rows: its row name -> the variant that fills it."""
    return {
        "loss": {name: name for name in ("L1", "GAN", "cGAN", "L1+GAN", "L1+cGAN")},
        "generator": {"encoder-decoder L1": "encoder-decoder L1", "encoder-decoder L1+cGAN": "encoder-decoder L1+cGAN",
                      "U-Net L1": "L1", "U-Net L1+cGAN": "L1+cGAN"},
        "discriminator": {"1x1": "D 1x1", "16x16": "D 16x16", "70x70": "L1+cGAN", "286x286": "D 286x286"},
    }


SCORES = ("per_pixel_acc", "per_class_acc", "class_iou", "l1", "psnr", "ssim")


def summarize(runs: list[dict]) -> dict[str, dict[str, float]]:
    """Mean and standard deviation over seeds of each score."""
    return {key: {"mean": float(np.mean([r[key] for r in runs])), "std": float(np.std([r[key] for r in runs]))}
            for key in SCORES}


def run_ablations(out, preset: presets.Preset | str = "cpu", *, steps: int | None = None, seeds=(0, 1),
                  segmenter_steps: int = 1000, progress: bool = True) -> dict:
    """Train and score every variant for every seed into `out`; returns the results (chapter "Reproducing the paper")."""
    preset = presets.get(preset) if isinstance(preset, str) else preset
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    config = {"preset": preset.name, "image_size": preset.image_size, "steps": steps or preset.steps(),
              "seeds": list(seeds), "segmenter_steps": segmenter_steps,
              "patch_depths": patch_depths(preset.image_size)}
    if results.get("config", config) != config:
        raise ValueError(f"{results_path}: made with other settings {results['config']}; use another --out")
    results.setdefault("config", config)
    results.setdefault("runs", {})
    results.setdefault("wall_seconds", 0.0)
    results["provenance"] = records.provenance()
    clock = time.monotonic()

    def checkpoint_results():
        nonlocal clock
        now = time.monotonic()
        results["wall_seconds"] += now - clock
        clock = now
        records.write_json(results_path, results)

    data_dir = facades.make_facades(out / "data", size=preset.image_size, progress=progress)
    test_inputs, test_targets = data.example_batch(data_dir / "test", facades.SPLITS["test"], image_size=preset.image_size)
    segmenter_path = out / "segmenter.weights.h5"
    segmenter = evaluate.Segmenter(preset.image_size)
    if segmenter_path.exists():
        segmenter.load_weights(segmenter_path)
    else:
        segmenter = evaluate.train_segmenter(data_dir, preset.image_size, steps=segmenter_steps, verbose=int(progress))
        segmenter.save_weights(segmenter_path)
    results["ground truth"] = evaluate.fcn_scores(segmenter, test_targets, test_inputs)  # the segmenter's own accuracy
    checkpoint_results()

    jobs = [(name, options, seed) for name, options in variants(preset).items() for seed in seeds]
    for name, options, seed in tqdm(jobs, desc="ablations", unit="run", disable=not progress):
        key = f"{name} / seed {seed}"
        if key in results["runs"]:
            continue
        model = training.train(data_dir, out / "runs" / f"{name.replace(' ', '_')}-seed{seed}", preset,
                               steps=config["steps"], seed=seed, progress=progress, **options)
        keras.utils.set_random_seed(seed)
        outputs = model.translate(test_inputs)
        results["runs"][key] = {"variant": name, "seed": seed, "options": options,
                                **evaluate.fcn_scores(segmenter, outputs, test_inputs),
                                **evaluate.image_metrics(outputs, test_targets)}
        if seed == seeds[0]:
            runs.save_sample(model, (test_inputs[:4], test_targets[:4]), out / "samples" / f"{name}.png")
        checkpoint_results()

    results["variants"] = {name: summarize([r for r in results["runs"].values() if r["variant"] == name])
                           for name in variants(preset)}
    results["tables"] = table_rows(preset)
    checkpoint_results()
    return results


TITLES = {"loss": "Loss ablation", "generator": "Generator ablation (L1 vs L1+cGAN, encoder-decoder vs U-Net)",
          "discriminator": "Discriminator receptive field (L1+cGAN)"}
_SHOWN = (("per_pixel_acc", "per-pixel acc"), ("per_class_acc", "per-class acc"), ("class_iou", "class IoU"))


def format_table(results: dict, table: str) -> str:
    """One ablation table as text: FCN-scores mean ± std over seeds beside the paper's Cityscapes numbers."""
    depths = results["config"]["patch_depths"]
    lines = [TITLES[table], f"{'':26}" + "".join(f"{label:>17}" for _, label in _SHOWN) + "   | paper (Cityscapes)"]
    rows = dict(results["tables"][table])
    if table == "loss":
        rows["ground truth"] = None
    for row, variant in rows.items():
        name = f"{row} (n_layers={depths[row]})" if table == "discriminator" else row
        if variant is None:
            ours = "".join(f"{results['ground truth'][key]:>17.3f}" for key, _ in _SHOWN)
        else:
            scores = results["variants"][variant]
            ours = "".join(f"{scores[key]['mean']:>10.3f} ± {scores[key]['std']:.3f}" for key, _ in _SHOWN)
        paper = " ".join("  -  " if v is None else f"{v:.2f}" for v in PAPER[table][row])
        lines.append(f"{name:26}{ours}   | {paper}")
    return "\n".join(lines)


def orderings(results: dict, table: str, key: str = "per_pixel_acc") -> list[tuple[str, str, bool]]:
    """For each pair of rows the paper ranks apart, (better, worse, whether our means rank them the same way)."""
    index = {"per_pixel_acc": 0, "per_class_acc": 1, "class_iou": 2}[key]
    rows = results["tables"][table]
    pairs = []
    for a in rows:
        for b in rows:
            paper_a, paper_b = PAPER[table][a][index], PAPER[table][b][index]
            if paper_a is None or paper_b is None or not paper_a > paper_b:
                continue
            ours_a, ours_b = (results["variants"][rows[r]][key]["mean"] for r in (a, b))
            pairs.append((a, b, ours_a > ours_b))
    return pairs
