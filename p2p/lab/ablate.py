"""The paper's three ablation tables (loss, generator, discriminator), re-run on the procedural facades.

    python -m p2p ablate --out DIR [--preset cpu] [--steps N] [--seeds 0 1]

Every variant is trained by the experiment runner (`p2p.lab.experiments`) for each seed, then scored on the test split
with the FCN-score and L1 / PSNR / SSIM. results.json is rewritten after every finished run,
with its provenance, so an interrupted ablation resumes where it stopped (an unfinished training
run resumes from its checkpoint). Explained in the chapter "Reproducing the paper".
"""

from __future__ import annotations

import math
from pathlib import Path

import keras
import numpy as np

from p2p import data, runs
from p2p.config import Config, get_preset
from p2p.lab import evaluate, facades
from p2p.lab.experiments import Experiment, Job, differences, read_results
from p2p.lab.variants import configure
from p2p.models import Discriminator, receptive_field
from p2p.runtime import files

#: The paper's FCN-scores on Cityscapes (per-pixel acc, per-class acc, class IoU); None where not reported.
PAPER = {
    "loss": {"L1": (0.42, 0.15, 0.11), "GAN": (0.22, 0.05, 0.01), "cGAN": (0.57, 0.22, 0.16),
             "L1+GAN": (0.64, 0.20, 0.15), "L1+cGAN": (0.66, 0.23, 0.17), "ground truth": (0.80, 0.26, 0.21)},
    # Table 2 was trained with batch size 10 (its caption), hence its U-Net L1+cGAN row differs from Table 1's.
    "generator": {"encoder-decoder L1": (0.35, 0.12, 0.08), "encoder-decoder L1+cGAN": (0.29, 0.09, 0.05),
                  "U-Net L1": (0.48, 0.18, 0.13), "U-Net L1+cGAN": (0.55, 0.20, 0.14)},
    "discriminator": {"1x1": (0.39, 0.15, 0.10), "16x16": (0.65, 0.21, 0.17), "70x70": (0.66, 0.23, 0.17),
                      "286x286": (0.42, 0.16, 0.11)},
}

#: Receptive fields of the paper's discriminators at 256x256; `patch_depths` matches them by share of the image.
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


def variants(preset: Config) -> dict[str, dict]:
    """Every model the three tables need, by name, with its settings (shared rows trained once)."""
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
    runs["L1+cGAN simultaneous"] = {"n_layers": depths["70x70"], "gan_update": "simultaneous"}
    return runs


def table_rows(preset: Config) -> dict[str, dict[str, str]]:
    """Each table's rows: its row name -> the variant that fills it."""
    return {
        "loss": {name: name for name in ("L1", "GAN", "cGAN", "L1+GAN", "L1+cGAN")},
        "generator": {"encoder-decoder L1": "encoder-decoder L1", "encoder-decoder L1+cGAN": "encoder-decoder L1+cGAN",
                      "U-Net L1": "L1", "U-Net L1+cGAN": "L1+cGAN"},
        "discriminator": {"1x1": "D 1x1", "16x16": "D 16x16", "70x70": "L1+cGAN", "286x286": "D 286x286"},
    }


#: The published implementations' choices that p2p offers as options, each a row against p2p's default (L1+cGAN).
IMPLEMENTATION_ROWS = {
    "p2p default: D, then G against the updated D (PyTorch)": "L1+cGAN",
    "G from D's verdict before D's update (Lua, TF tutorial)": "L1+cGAN simultaneous",
}


SCORES = ("per_pixel_acc", "per_class_acc", "class_iou", "l1", "psnr", "ssim")


def summarize(runs: list[dict]) -> dict[str, dict[str, float]]:
    """Mean and standard deviation over seeds of each score."""
    return {key: {"mean": float(np.mean([r[key] for r in runs])), "std": float(np.std([r[key] for r in runs]))}
            for key in SCORES}


def run_ablations(out, preset: Config | str = "cpu", *, steps: int | None = None, seeds=(0, 1),
                  segmenter_steps: int = 1000, progress: bool = True) -> dict:
    """Train and score every variant for every seed into `out`; returns the results (chapter "Reproducing the paper")."""
    preset = get_preset(preset) if isinstance(preset, str) else preset
    steps = steps or preset.total_steps()
    settings = {"preset": preset.preset, "image_size": preset.image_size, "steps": steps,
                "segmenter_steps": segmenter_steps, "patch_depths": patch_depths(preset.image_size), "seeds": []}
    command = f"python -m p2p ablate --out {out} --preset {preset.preset}" + (f" --steps {steps}" if steps else "") \
        + " --seeds " + " ".join(map(str, seeds))
    experiment = Experiment(out, settings, command=command, growing=("seeds",))  # more seeds may be added, nothing else
    out, results = experiment.out, experiment.results

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
    experiment.save()

    def measure(job, model):
        name, seed = job.key.split(" / seed ")
        keras.utils.set_random_seed(job.config.seed)
        outputs = model.translate(test_inputs)
        if job.config.seed == seeds[0]:
            runs.save_sample(model, (test_inputs[:4], test_targets[:4]), out / "samples" / f"{name}.png")
        return {"variant": name, "seed": job.config.seed, "options": variants(preset)[name],
                **evaluate.fcn_scores(segmenter, outputs, test_inputs), **evaluate.image_metrics(outputs, test_targets)}

    # Seed by seed, so that an ablation cut short has every variant for its first seeds.
    jobs = [Job(f"{name} / seed {seed}", f"{name.replace(' ', '_')}-seed{seed}",
                configure(preset, steps=steps, seed=seed, **options), data_dir)
            for seed in seeds for name, options in variants(preset).items()]
    experiment.run(jobs, measure, desc="ablations", progress=progress)
    _summarize_runs(results, preset)
    experiment.save()
    return results


def _summarize_runs(results: dict, preset: Config) -> None:
    """Fill in the seeds, the per-variant summaries and the tables of `results` from its runs."""
    results["config"]["seeds"] = sorted({r["seed"] for r in results["runs"].values()})
    results["variants"] = {name: summarize(found) for name in variants(preset)
                           if (found := [r for r in results["runs"].values() if r["variant"] == name])}
    results["tables"] = table_rows(preset)


def merge_results(out, *others) -> dict:
    """Add the runs of other ablation folders (other seeds run side by side) to `out` (chapter "Reproducing the paper").

    The folders must share their settings and their segmenter (copy out/segmenter.weights.h5 and
    out/data into a folder before running more seeds there): FCN-scores from different
    segmenters cannot be compared. Each merged folder's provenance is kept under "merged".
    """
    out = Path(out)
    results = read_results(out / "results.json", "ablate")
    for other in map(Path, others):
        theirs = read_results(other / "results.json", "ablate")
        if changed := differences(theirs["config"], results["config"], ignore=("seeds",), labels=("there", f"in {out}")):
            raise ValueError(f"{other}: made with other settings ({changed}): merge only ablations of the same settings")
        if theirs.get("ground truth") != results.get("ground truth"):
            raise ValueError(f"{other}: scored by another segmenter than {out} (its scores on the real photos differ); "
                             f"copy {out / 'segmenter.weights.h5'} into it and score again")
        clashes = sorted(key for key in theirs["runs"] if key in results["runs"] and theirs["runs"][key] != results["runs"][key])
        if clashes:
            raise ValueError(f"{other}: runs {', '.join(clashes)} differ from those in {out}")
        results["runs"].update(theirs["runs"])
        results["wall_seconds"] += theirs["wall_seconds"]
        results.setdefault("merged", []).append({"folder": other.name, "seeds": theirs["config"]["seeds"],
                                                  "wall_seconds": theirs["wall_seconds"], **theirs["provenance"]})
    _summarize_runs(results, get_preset(results["config"]["preset"]))
    files.write_json(out / "results.json", results)
    return results


TITLES = {"loss": "Loss ablation",
          "generator": "Generator ablation (the paper's Table 2 was trained with batch size 10)",
          "discriminator": "Discriminator receptive field (L1+cGAN)"}
FCN_SCORES = (("per_pixel_acc", "per-pixel acc"), ("per_class_acc", "per-class acc"), ("class_iou", "class IoU"))
IMAGE_SCORES = (("l1", "L1"), ("psnr", "PSNR (dB)"), ("ssim", "SSIM"))


def _row_name(results: dict, table: str, row: str) -> str:
    depths = results["config"]["patch_depths"]
    return f"{row} (n_layers={depths[row]})" if table == "discriminator" else row


def format_table(results: dict, table: str, scores=FCN_SCORES) -> str:
    """One ablation table as text: scores mean ± std over seeds, and for FCN-scores the paper's Cityscapes numbers."""
    fcn = scores == FCN_SCORES
    header = f"{'':26}" + "".join(f"{label:>17}" for _, label in scores) + ("   | paper (Cityscapes)" if fcn else "")
    lines = [TITLES[table], header]
    rows = dict(results["tables"][table])
    if table == "loss" and fcn:
        rows["ground truth"] = None  # the segmenter on the real photos
    for row, variant in rows.items():
        if variant is None:
            ours = "".join(f"{results['ground truth'][key]:>17.3f}" for key, _ in scores)
        else:
            summary = results["variants"][variant]
            ours = "".join(f"{summary[key]['mean']:>10.3f} ± {summary[key]['std']:.3f}" for key, _ in scores)
        paper = "   | " + " ".join("  -  " if v is None else f"{v:.2f}" for v in PAPER[table][row]) if fcn else ""
        lines.append(f"{_row_name(results, table, row):26}{ours}{paper}")
    return "\n".join(lines)


def t_test_p(t: float, df: int) -> float:
    """Two-sided p-value of Student's t statistic `t` with `df` degrees of freedom (Simpson's rule on the density)."""
    if not math.isfinite(t):
        return 0.0
    density = lambda x: math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
                                 - (df + 1) / 2 * math.log1p(x * x / df))
    n, b = 2000, abs(t)
    h = b / n
    inside = density(0) + density(b) + sum((4 if i % 2 else 2) * density(i * h) for i in range(1, n))
    return max(0.0, 1.0 - 2.0 * inside * h / 3.0)


def paired_difference(results: dict, better: str, worse: str, key: str = "per_pixel_acc") -> dict:
    """Score of variant `better` minus variant `worse`, paired by seed: mean, standard error, t, p and significance at 5%.

    Both variants of a seed train on the same data order from the same seed, so the seed is a
    block and the per-seed differences are the samples (a paired t-test over seeds).
    """
    by_seed = {name: {r["seed"]: r[key] for r in results["runs"].values() if r["variant"] == name} for name in (better, worse)}
    seeds = sorted(set(by_seed[better]) & set(by_seed[worse]))
    differences = np.array([by_seed[better][s] - by_seed[worse][s] for s in seeds])
    mean = float(differences.mean()) if len(seeds) else float("nan")
    if len(seeds) < 2:
        return {"mean": mean, "se": float("nan"), "t": float("nan"), "p": float("nan"), "n": len(seeds), "significant": False}
    se = float(differences.std(ddof=1) / math.sqrt(len(seeds)))
    t = mean / se if se > 0 else math.copysign(math.inf, mean) if mean else 0.0
    p = t_test_p(t, len(seeds) - 1)
    return {"mean": mean, "se": se, "t": t, "p": p, "n": len(seeds), "significant": p < 0.05}


def orderings(results: dict, table: str, key: str = "per_pixel_acc") -> list[dict]:
    """Every pair of rows the paper ranks apart by `key`: the paper's difference and ours, paired over seeds.

    Each entry: better and worse (the paper's order), paper (its difference), and from
    `paired_difference` mean, se, p, significant; agrees is whether our mean has the paper's sign.
    """
    index = {"per_pixel_acc": 0, "per_class_acc": 1, "class_iou": 2}[key]
    rows = results["tables"][table]
    pairs = []
    for a in rows:
        for b in rows:
            paper_a, paper_b = PAPER[table][a][index], PAPER[table][b][index]
            if paper_a is None or paper_b is None or not paper_a > paper_b:
                continue
            ours = paired_difference(results, rows[a], rows[b], key)
            pairs.append({"better": a, "worse": b, "paper": paper_a - paper_b, **ours, "agrees": ours["mean"] > 0})
    return pairs


def verdict(pair: dict) -> str:
    """In words, what a paired difference supports: the paper's order, the reverse, or neither (not significant)."""
    if not pair["significant"]:
        return "not significant"
    return "as in the paper, significant" if pair["agrees"] else "REVERSED, significant"


def format_orderings(results: dict, table: str, key: str = "per_pixel_acc") -> str:
    """The orderings of one table as text: the paper's difference, ours ± its standard error over seeds, p and verdict."""
    pairs = orderings(results, table, key)
    n = pairs[0]["n"] if pairs else 0
    counts = {v: sum(verdict(p) == v for p in pairs) for v in ("as in the paper, significant", "REVERSED, significant")}
    lines = [f"{table}: {len(pairs)} orderings by {key} over {n} seeds; {counts['as in the paper, significant']} as in the "
             f"paper and significant, {counts['REVERSED, significant']} significantly reversed, the rest not significant",
             f"    {'paper: better > worse':50}{'paper':>7}{'ours ± se':>17}{'p':>7}"]
    for p in pairs:
        lines.append(f"    {p['better'] + ' > ' + p['worse']:50}{p['paper']:>+7.2f}{p['mean']:>+10.3f} ± {p['se']:.3f}"
                     f"{p['p']:>7.3f}  {verdict(p)}")
    return "\n".join(lines)


def format_implementations(results: dict, key: str = "per_pixel_acc") -> str:
    """The implementations' options p2p offers, scored: each row's scores and its paired difference from p2p's default."""
    default = next(iter(IMPLEMENTATION_ROWS.values()))
    lines = [f"{'':58}{'per-pixel acc':>17}{'L1':>17}{'SSIM':>17}   difference in {key} (p)"]
    for label, variant in IMPLEMENTATION_ROWS.items():
        if variant not in results["variants"]:
            continue
        summary = results["variants"][variant]
        scores = "".join(f"{summary[k]['mean']:>10.3f} ± {summary[k]['std']:.3f}" for k in ("per_pixel_acc", "l1", "ssim"))
        if variant == default:
            lines.append(f"{label:58}{scores}")
            continue
        d = paired_difference(results, variant, default, key)
        lines.append(f"{label:58}{scores}   {d['mean']:+.3f} ± {d['se']:.3f} (p {d['p']:.2f})")
    return "\n".join(lines)
