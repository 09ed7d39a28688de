"""Book runs: the models behind the chapters' headline figures, trained once and shipped by name.

    python -m p2p bookruns [NAME ...]            # train (or resume) them, then export them to book/runs/trained/
    python -m p2p bookruns --replace-shipped     # ... and export them to p2p/lab/trained/, replacing the shipped ones

Each book run is a `p2p.training.train` run (through `p2p.lab.experiments`) on the procedural facades with the `book` preset,
trained in a resumable work folder. On the way it stops at a few step counts (`MILESTONES`) to
measure its outputs on the whole test split (one image at a time, the paper's test protocol) and
to save the same test examples, so the chapters can show what shorter runs give. When it
finishes, the run is exported to a compact folder, like those the repository ships (the shipped
ones, which the chapters load, are written only when asked: `replace_shipped`, --replace-shipped):

    config.json       the run's configuration (as `train` wrote it)
    generator.npz     the generator's weights in float16 (and discriminator.npz where a chapter needs D)
    metrics.csv       the training losses
    milestones.json   sharpness, colour spread and L1 on the test split at each milestone (and window contrast)
    samples.npz       the first test inputs, their targets and the outputs at each milestone (uint8)
    provenance.json   the command, steps, training time, machine, TensorFlow version and commit

`p2p.runs.load_generator(folder)` loads the generator; `load(name)` finds a book run by name.
Explained in the chapter "The conditional GAN objective" (and used by chapters 3 to 7).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import stat
from pathlib import Path

import keras
import numpy as np

from p2p import data, runs, training
from p2p.config import Config, get_preset, resolve
from p2p.inference import translate
from p2p.lab import datasets, evaluate, facades, records, variants
from p2p.lab.experiments import Experiment, Job
from p2p.models import Discriminator
from p2p.runtime import files

#: Where the shipped book runs live: inside the package, so that `pip install` (Colab) brings them too.
SHIPPED = Path(__file__).resolve().parent / "trained"

#: Fractions of a book run's steps at which it is measured and sampled on the way.
MILESTONES = (0.025, 0.1, 0.25, 0.5, 1.0)


def milestone_steps(steps: int) -> list[int]:
    """The step counts at which a run of `steps` steps is measured: MILESTONES of it, at least one step each."""
    return sorted({max(int(round(fraction * steps)), 1) for fraction in MILESTONES})


#: How many test examples each milestone keeps as samples.
SAMPLES = 6


@dataclasses.dataclass(frozen=True)
class BookRun:
    """One shipped model: a name, what it shows, the settings it changes and whether its discriminator ships too."""

    name: str
    description: str
    options: dict
    keep_discriminator: bool = False


BOOK_RUNS = {
    run.name: run
    for run in (
        BookRun("l1", "U-Net trained with L1 alone (the paper's 'L1' row)", {"gan_weight": 0.0}),
        BookRun("l1-cgan", "U-Net trained with L1 + cGAN, the paper's objective", {}, keep_discriminator=True),
        BookRun("encoder-decoder", "encoder-decoder (no skips) trained with L1 + cGAN", {"skips": False}),
        BookRun("encoder-decoder-l1", "encoder-decoder (no skips) trained with L1 alone", {"skips": False, "gan_weight": 0.0}),
        BookRun("encoder-decoder-l1-batch10", "encoder-decoder trained with L1 alone at batch size 10, as the paper's Table 2 "
                "(the control of chapter \"The generator\")", {"skips": False, "gan_weight": 0.0, "batch_size": 10}),
        BookRun("encoder-decoder-l1-no-dropout", "encoder-decoder trained with L1 alone, without dropout (the other control "
                "of chapter \"The generator\")", {"skips": False, "gan_weight": 0.0, "dropout": 0.0}),
    )
}


def get(name: str) -> BookRun:
    """The book run called `name`, with the known names in the error if there is none."""
    try:
        return BOOK_RUNS[name]
    except KeyError:
        raise ValueError(f"unknown book run {name!r}; the book runs are {', '.join(BOOK_RUNS)}") from None


def folder(name: str, root=None) -> Path:
    """The shipped folder of book run `name` (under `root`, default p2p/lab/trained)."""
    return Path(root or SHIPPED) / get(name).name


def load(name: str, root=None, *, verbose: bool = True):
    """The generator of book run `name` and its config; prints the run's provenance (chapters 3 to 7).

    Every figure made from a book run says which run it is: this line is it.
    """
    path = folder(name, root)
    generator, config = runs.load_generator(path)
    if verbose:
        print(describe(name, root))
    return generator, config


def load_discriminator(name: str, root=None):
    """The discriminator of book run `name`, when the run ships it (chapter "The PatchGAN discriminator")."""
    path = folder(name, root)
    if not (path / "discriminator.npz").exists():
        raise FileNotFoundError(f"{path}: this book run ships no discriminator; the ones that do: "
                                f"{', '.join(r.name for r in BOOK_RUNS.values() if r.keep_discriminator)}")
    config = variants.read(path)
    discriminator = Discriminator(config.image_size, config.ndf, config.n_layers, in_channels=6 if config.conditional else 3)
    runs.set_weights_from(discriminator, path / "discriminator.npz")
    return discriminator


def describe(name: str, root=None) -> str:
    """One line saying which book run this is and how it was made."""
    path = folder(name, root)
    provenance = json.loads((path / "provenance.json").read_text())
    commits = " then ".join(_short(c["commit"]) for c in provenance.get("trained_at") or [provenance])
    return (f"book run {name!r} ({get(name).description}): {provenance['steps']:,} steps in "
            f"{provenance['train_seconds'] / 60:.0f} min on {provenance['machine']}, trained at commit {commits}, "
            f"`{provenance['command']}`")


def _short(commit: str) -> str:
    """A commit as its first 10 hex digits, keeping a "+changes" mark."""
    return commit[:10] + ("+changes" if commit.endswith("+changes") else "")


def milestones(name: str, root=None) -> dict:
    """The measures of book run `name` at each milestone: {step: {"sharpness": ..., ...}}, plus the real photos' under "truth"."""
    raw = json.loads((folder(name, root) / "milestones.json").read_text())
    return {key if key == "truth" else int(key): value for key, value in raw.items()}


def samples(name: str, root=None) -> dict[str, np.ndarray]:
    """The saved test examples of book run `name`: "inputs", "targets" and "step_<n>" outputs, uint8."""
    with np.load(folder(name, root) / "samples.npz") as saved:
        return {key: saved[key] for key in saved.files}


def export_folder(name: str, work="book/runs", out=None, *, replace_shipped: bool = False) -> Path:
    """Where book run `name` is exported: out/<name>, by default work/trained/<name>; checked before anything is written.

    The shipped runs (`SHIPPED`), which the chapters load, are read-only: only `replace_shipped`
    exports into them, and no work folder lies in them. A folder already at out/<name> is replaced
    only if it is a book run's export. Each refusal is a ValueError naming the path and the fix.
    """
    get(name)
    check_not_shipped(work, "--work")
    if replace_shipped and out is not None and Path(out).resolve() != SHIPPED.resolve():
        raise ValueError(f"--replace-shipped exports into {SHIPPED}: give it without --out (or --out without it)")
    root = SHIPPED if replace_shipped else Path(work) / "trained" if out is None else Path(out)
    target = root / name
    if _inside(target, SHIPPED) and not replace_shipped:
        raise ValueError(f"{root}: holds the shipped book runs, which the chapters load; give another --out, or "
                         "--replace-shipped to replace them")
    if os.path.lexists(target) and not _exported(target):
        raise ValueError(f"{target}: exists, and is not a book run's export (no provenance.json of `python -m p2p "
                         "bookruns` in it); give another --out, or move it away")
    return target


def check_not_shipped(path, option: str) -> None:
    """Refuse a path in the shipped book runs, read-only to every command: a ValueError naming `option` (translate, export)."""
    if _inside(path, SHIPPED):
        raise ValueError(f"{path}: lies in the shipped book runs ({SHIPPED}), which the chapters load; give another {option}")


def _inside(path, root: Path) -> bool:
    """Whether `path` is `root` or lies in it, through links."""
    path, root = Path(path).resolve(), Path(root).resolve()
    return path == root or root in path.parents


def _exported(folder: Path) -> bool:
    """Whether `folder` is a book run's export: its provenance.json (a regular file) names `python -m p2p bookruns`."""
    provenance = folder / "provenance.json"
    try:
        if not stat.S_ISREG(os.stat(provenance).st_mode) or os.stat(provenance).st_size > 1024**2:
            return False
        command = json.loads(provenance.read_text()).get("command", "")
    except (OSError, ValueError, AttributeError):  # missing, unreadable, not a JSON object
        return False
    return folder.is_dir() and isinstance(command, str) and command.startswith("python -m p2p bookruns")


def train_book_run(name: str, work="book/runs", out=None, *, preset: Config | str = "book",
                   steps: int | None = None, seed: int = 0, dataset: str = "procedural", progress: bool = True,
                   replace_shipped: bool = False) -> Path:
    """Train (or resume) book run `name` in work/<name>-<preset>, measuring at each milestone, then export it to out/<name>.

    `steps` defaults to the preset's epochs. The milestones are jobs of the experiment runner
    (`p2p.lab.experiments`) that train one run folder further: interrupted, the same call resumes
    from the last checkpoint and keeps the milestones already measured; called again with more
    steps, it extends a finished run. Returns the exported folder. A chapter's `retrain = True`
    calls this. `dataset` is any `p2p.lab.datasets.dataset` name: the procedural facades, a
    released dataset or a folder, measured on its test split (or val) with its usual direction. `out`
    defaults to work/trained; the shipped runs are replaced only with `replace_shipped` (`export_folder`).
    """
    target = export_folder(name, work, out, replace_shipped=replace_shipped)  # refused before anything is written
    run = get(name)
    preset = get_preset(preset) if isinstance(preset, str) else preset
    procedural = dataset == "procedural"
    work_dir = Path(work) / (f"{run.name}-{preset.preset}" + ("" if procedural else f"-{Path(dataset).name}"))
    data_dir, direction = datasets.dataset(dataset, image_size=preset.image_size, seed=seed, root=work)
    config = variants.configure(preset, seed=seed, direction=direction, **run.options)
    config = resolve(config, steps=steps or config.total_steps(len(data.list_pairs(data.split_folder(data_dir, "train")))))
    command = f"python -m p2p bookruns {run.name}" + ("" if preset.preset == "book" else f" --preset {preset.preset}") \
        + (f" --steps {steps}" if steps else "") + (f" --seed {seed}" if seed else "") \
        + ("" if procedural else f" --dataset {Path(dataset).name}")
    settings = {"run": run.name, **{k: v for k, v in config.to_dict().items() if k != "steps"}}
    experiment = Experiment(work_dir, settings, command=command)
    results = experiment.results
    test_inputs, test_targets = data.example_batch(datasets.evaluation_split(data_dir), facades.SPLITS["test"],
                                                   image_size=config.image_size, direction=direction)
    results["truth"] = evaluate.blur_measures(test_targets, test_targets)
    samples_path = work_dir / "samples.npz"
    outputs_at = {"inputs": data.to_uint8(test_inputs[:SAMPLES]).numpy(),
                  "targets": data.to_uint8(test_targets[:SAMPLES]).numpy()}
    if samples_path.exists():
        with np.load(samples_path) as saved:
            outputs_at.update({key: saved[key] for key in saved.files})

    def measure(job, model):
        outputs = translate(model.generator, test_inputs)
        outputs_at[job.key] = data.to_uint8(outputs[:SAMPLES]).numpy()
        files.write_atomically(samples_path, lambda file: np.savez_compressed(file, **outputs_at))
        measures = evaluate.blur_measures(outputs, test_targets)
        if procedural:  # where the label maps put the windows (chapter "The generator")
            measures["window_contrast"] = evaluate.window_contrast(outputs, test_inputs)
        if progress:
            print(f"{name} at {job.key}: " + ", ".join(f"{k} {v:.3f}" for k, v in measures.items()), flush=True)
        return measures

    measured = [int(key[5:]) for key in results["runs"]]
    jobs = [Job(f"step_{step}", "run", config, data_dir, until=step) for step in milestone_steps(config.steps)
            if step >= max(measured, default=0)]  # a milestone passed before a run was extended is not measured
    if any(job.key not in results["runs"] for job in jobs):  # which code trained which steps, over several sessions
        results.setdefault("trained_at", []).append({"commit": records.commit_of_package(),
                                                     "from_step": max(measured, default=0)})
    experiment.run(jobs, measure, desc=name, progress=progress, log_every=math.gcd(50, *milestone_steps(config.steps)))
    model = training.train(data_dir, work_dir / "runs" / "run", config, progress=False, build=variants.build_model)
    data_name = "procedural facades" if procedural else Path(dataset).name  # never a path of the training machine
    return export(run, model, work_dir, results, target, data_name)


def export(run: BookRun, model, work_dir: Path, results: dict, out: Path, data_name: str = "procedural facades") -> Path:
    """Write the compact shipped folder of a finished book run (weights in float16) and return it."""
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    config = json.loads((work_dir / "runs" / "run" / "config.json").read_text())
    config["data"] = data_name  # where it was trained is a path of that machine
    (partial / "config.json").write_text(json.dumps(config, indent=2))
    save_weights_to(model.generator, partial / "generator.npz")
    if run.keep_discriminator:
        save_weights_to(model.discriminator, partial / "discriminator.npz")
    shutil.copy(work_dir / "runs" / "run" / "metrics.csv", partial / "metrics.csv")
    shutil.copy(work_dir / "samples.npz", partial / "samples.npz")
    milestones = {key[5:]: {k: v for k, v in value.items() if not k.startswith("train_")}
                  for key, value in results["runs"].items()}
    (partial / "milestones.json").write_text(json.dumps({**milestones, "truth": results["truth"]}, indent=2))
    provenance = records.provenance(
        command=results["provenance"]["command"],
        steps=int(model.gen_optimizer.iterations.numpy()),
        train_seconds=round(sum(value["train_wall_seconds"] for value in results["runs"].values()), 1),
        trained_at=results.get("trained_at", []),  # the commit of each training session and its first step
    )  # its commit is the one of the package that exported the run
    files.write_json(partial / "provenance.json", provenance)
    shutil.rmtree(out, ignore_errors=True)
    partial.replace(out)
    return out


def save_weights_to(model: keras.Model, path) -> None:
    """Save every weight of a model (BatchNorm's moving statistics included) in float16, compressed, to one .npz."""
    arrays = {f"{i:03d}": np.asarray(w, np.float16) for i, w in enumerate(model.get_weights())}
    files.write_atomically(Path(path), lambda file: np.savez_compressed(file, **arrays))
