"""The command line, `python -m p2p <command>`: data, training and translation, and the book's experiments.

    python -m p2p facades OUT [--seed 0] [--size 256]
    python -m p2p train --data DIR --preset cpu --out RUN [--steps N] [--set l1_weight=10 ...] [--strategy mirrored]
    python -m p2p translate --run RUN IMAGE|FOLDER... --out DIR [--size N] [--overwrite]
    python -m p2p download NAME [--sha256 HEX] [--cache DIR]   # a dataset released with the paper
    python -m p2p ablate --out DIR [--preset cpu] [--steps N] [--seeds 0 1]
    python -m p2p troubleshoot --out DIR [--preset cpu] [--steps N] [--seeds 0 1 2]
    python -m p2p bookruns [NAME ...]          # the book's shipped models (p2p.lab.bookruns)
    python -m p2p export RUN OUT               # a generator for the Play page's in-browser editor
    python -m p2p bench [--configs paper cpu] [--json FILE]   # p2p's train step against the TF tutorial's

See README.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import json
import sys
from pathlib import Path

from p2p.config import PRESETS, Config


def main(argv=None) -> int:
    """Parse the arguments and run one command."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:  # the benchmark parses its own options
        from p2p.lab import bench

        return bench.main(argv[1:])
    args = parser().parse_args(argv)
    if args.command == "facades":  # without TensorFlow: it takes seconds to import
        from p2p.lab.facades import make_facades

        try:
            print(make_facades(args.out, seed=args.seed, size=args.size))
        except (ValueError, OSError) as err:
            return refuse(err)
        return 0

    from p2p.lab import threads
    from p2p.runtime.stopping import NonFiniteLoss

    try:
        if getattr(args, "threads", None):
            threads.set_thread_pools(*args.threads)
        elif hasattr(args, "preset"):
            threads.use_measured_thread_pools(args.preset, verbose=True)
        return COMMANDS[args.command](args)
    except (ValueError, OSError, NonFiniteLoss, RuntimeError) as err:  # DataError, RunInUse, DiskFull among them
        return refuse(err)
    except KeyboardInterrupt:  # train has said where it stopped and saved a checkpoint
        return 130


def refuse(err: Exception) -> int:
    """Print an error as one line, `error: ...`, and return the exit code 2; an OS error names its file and the fix."""
    message = str(err)
    if isinstance(err, OSError) and err.strerror and err.filename:  # raised by the system, not with a message of ours
        fix = {errno.EACCES: "give a path you can write to", errno.EPERM: "give a path you can write to",
               errno.EROFS: "give a path on a writable disk", errno.ENOTDIR: "a file is in the way: give another path",
               errno.EEXIST: "a file is in the way: give another path"}.get(err.errno, "check the path")
        message = f"{err.filename}: {err.strerror.lower()}: {fix}"
    print(f"error: {message}", file=sys.stderr)
    return 2


def path(value: str) -> Path:
    """A path argument; the empty string (an unset shell variable) is refused rather than taken for the current folder."""
    if not value.strip():
        raise argparse.ArgumentTypeError("an empty path: give a file or folder")
    return Path(value)


def whole(low: int, high: int | None = None):
    """An argument type: a whole number from `low` (to `high`), checked before anything runs."""
    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
        if number < low or high is not None and number > high:
            raise argparse.ArgumentTypeError(f"{number} is out of range: give {low} to {high}" if high is not None
                                             else f"{number} is out of range: give {low} or more")
        return number
    return parse


def positive(value: str) -> float:
    """An argument type: a number above 0."""
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not number > 0:
        raise argparse.ArgumentTypeError(f"{value} is out of range: give a number above 0")
    return number


SEED = whole(0, 2**31 - 1)
#: TensorFlow aborts the process (not an exception) on thread pools it cannot make; 0 is its default.
THREADS = whole(0, 1024)


def parser() -> argparse.ArgumentParser:
    """The command line's parser, one sub-command each."""
    parser = argparse.ArgumentParser(prog="python -m p2p", description="pix2pix: data, training, translation")
    commands = parser.add_subparsers(dest="command", required=True)

    facades = commands.add_parser("facades", help="write the procedural facades (train/val/test A|B files)")
    facades.add_argument("out", type=path)
    facades.add_argument("--seed", type=SEED, default=0)
    facades.add_argument("--size", type=whole(16, 4096), default=256, help="pixels per side of each half")

    train = commands.add_parser("train", help="train or resume a run")
    train.add_argument("--data", type=path, required=True, help="folder of A|B files, or with train/ (and val/) in it")
    train.add_argument("--preset", default="cpu", choices=list(PRESETS))
    train.add_argument("--out", type=path, required=True,
                       help="run folder: a new or empty one starts a run, a run folder resumes it")
    train.add_argument("--steps", type=whole(1), help="train steps (default: the preset's epochs)")
    train.add_argument("--direction", default="BtoA", choices=["AtoB", "BtoA"])
    train.add_argument("--seed", type=SEED, default=0)
    train.add_argument("--precision", default="auto", choices=["auto", "float32", "mixed_float16", "mixed_bfloat16"],
                       help="auto: mixed float16 on a GPU, mixed bfloat16 on a TPU, float32 on a CPU")
    train.add_argument("--gan-update", default="sequential", choices=["sequential", "simultaneous"],
                       help="D's step then G's against the updated D (PyTorch), or both from one D pass (the TF tutorial)")
    train.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                       help="any other setting of p2p.config.Config, e.g. --set l1_weight=10 --set skips=false")
    train.add_argument("--log-every", type=whole(1), default=50, help="steps per metrics.csv row")
    train.add_argument("--checkpoint-every", type=whole(1), default=200,
                       help="steps per checkpoint, at least --log-every: one at the first logged step past each multiple")
    train.add_argument("--strategy", default="default", choices=["default", "mirrored", "multi-worker", "tpu"],
                       help="tf.distribute: local GPUs (mirrored), machines named in TF_CONFIG (multi-worker), a TPU")
    train.add_argument("--threads", type=THREADS, nargs=2, metavar=("INTER", "INTRA"),
                       help="TensorFlow's inter-op and intra-op thread pools (0 0: its default); default: the sizes "
                            "python -m p2p bench measured fastest for the preset on this machine, if it did")

    translate = commands.add_parser("translate", help="translate images with a trained run, each at its own size")
    translate.add_argument("--run", type=path, required=True)
    translate.add_argument("images", type=path, nargs="+",
                           help="input images, A|B pair files (the input half is used), or folders of them")
    translate.add_argument("--out", type=path, required=True, help="folder for OUT/<name>.png (created if missing)")
    translate.add_argument("--overwrite", action="store_true",
                           help="replace earlier outputs in --out (an input image is never replaced)")
    translate.add_argument("--size", type=int, metavar="N",
                           help="resize each image so that its shorter side is N pixels, and write it at that size")

    download = commands.add_parser("download", help="download and unpack a dataset released with the paper")
    download.add_argument("name", help="facades, cityscapes, maps, edges2shoes, edges2handbags or night2day")
    download.add_argument("--sha256", help="the archive's expected sha256; a mismatch is refused and the file removed")
    download.add_argument("--cache", type=path, help="where to unpack it (default $P2P_CACHE or ~/.cache/p2p)")
    download.add_argument("--timeout", type=positive, default=60.0,
                          help="seconds (default 60) in which the server must answer, then send at least 64 KiB (or the rest) "
                               "each time; a slower server is given up and nothing of the download kept")

    for name, description, seeds in (("ablate", "re-run the paper's three ablation tables", [0, 1]),
                                     ("troubleshoot", "train the troubleshooting chapters' short runs", [0, 1, 2])):
        experiment = commands.add_parser(name, help=f"{description} (resumable)")
        experiment.add_argument("--out", type=path, required=True, help="results folder; an existing one is resumed")
        experiment.add_argument("--preset", default="cpu", choices=list(PRESETS))
        experiment.add_argument("--steps", type=whole(1), help="train steps per run (default: the preset's epochs)")
        experiment.add_argument("--seeds", type=SEED, nargs="+", default=seeds)
        if name == "ablate":
            experiment.add_argument("--segmenter-steps", type=whole(1), default=1000,
                                    help="train steps of the FCN-score segmenter")

    bookruns = commands.add_parser("bookruns", help="train and export the book runs (p2p.lab.bookruns)")
    bookruns.add_argument("names", nargs="*", help="book runs to train (default: all)")
    bookruns.add_argument("--work", type=path, default="book/runs", help="where the resumable training runs go")
    bookruns.add_argument("--out", type=path, default=None, help="where the compact runs are exported (default p2p/lab/trained)")
    bookruns.add_argument("--preset", default="book", choices=list(PRESETS),
                          help="another preset, for a quick look (tiny, cpu) or a GPU (paper)")
    bookruns.add_argument("--steps", type=whole(1), help="train steps (default: the preset's epochs)")
    bookruns.add_argument("--seed", type=SEED, default=0)
    bookruns.add_argument("--dataset", default="procedural", help="a released dataset (facades, maps, ...) or a folder")

    export = commands.add_parser("export", help="write a generator for the Play page's in-browser editor (p2p.lab.export)")
    export.add_argument("run", help="a run folder, or a book run's name (l1-cgan, ...)")
    export.add_argument("out", type=path, help="folder for generator.json and generator.bin")

    commands.add_parser("bench", help="p2p's train step against the TensorFlow tutorial's (python -m p2p bench --help)")
    return parser


def settings_from(assignments: list[str]) -> dict:
    """`--set NAME=VALUE` options as Config settings, each value read as JSON where it is one (10, 0.5, false) else a string."""
    fields = {field.name for field in dataclasses.fields(Config)}
    settings = {}
    for assignment in assignments:
        name, equals, value = assignment.partition("=")
        if not equals or name not in fields:
            raise ValueError(f"--set {assignment}: give NAME=VALUE with NAME one of {', '.join(sorted(fields))}")
        try:
            settings[name] = json.loads(value)
        except json.JSONDecodeError:
            settings[name] = value
    return settings


def train(args) -> int:
    """`python -m p2p train`: train or resume a run."""
    from p2p import training
    from p2p.lab import variants

    settings = {"direction": args.direction, "seed": args.seed, "precision": args.precision,
                "gan_update": args.gan_update, **settings_from(args.set)}
    if args.steps is not None:
        settings["steps"] = args.steps
    training.train(args.data, args.out, args.preset, log_every=args.log_every, checkpoint_every=args.checkpoint_every,
                   strategy=args.strategy, build=variants.build_model, **settings)
    print(args.out)
    return 0


def translate(args) -> int:
    """`python -m p2p translate`: image files translated at their own size by a run's generator (chapter "The training loop")."""
    for path in translate_files(args.run, args.images, args.out, overwrite=args.overwrite, size=args.size):
        print(path)
    return 0


def download(args) -> int:
    """`python -m p2p download`: a released dataset, checked, into the cache."""
    from p2p.lab import datasets

    try:
        print(datasets.download(args.name, args.cache, sha256=args.sha256, timeout=args.timeout))
    except KeyboardInterrupt:  # the half-downloaded archive is already removed
        print(f"interrupted: {args.name} is not ready (nothing half-downloaded is kept); run the same command again",
              file=sys.stderr)
        return 130
    return 0


def ablate(args) -> int:
    """`python -m p2p ablate`: the paper's three tables, resumable."""
    from p2p.lab.ablate import format_table, run_ablations

    results = run_ablations(args.out, args.preset, steps=args.steps, seeds=args.seeds, segmenter_steps=args.segmenter_steps)
    for table in results["tables"]:
        print(format_table(results, table), end="\n\n")
    print(args.out / "results.json")
    return 0


def troubleshoot(args) -> int:
    """`python -m p2p troubleshoot`: the troubleshooting chapters' short runs, resumable."""
    from p2p.lab.troubleshooting import VARIANTS, format_rows, run_troubleshooting

    results = run_troubleshooting(args.out, args.preset, steps=args.steps, seeds=args.seeds)
    print(format_rows(results, VARIANTS))
    print(f"{results['cpu_seconds'] / 60:.1f} CPU minutes, {results['wall_seconds'] / 60:.1f} minutes in all")
    print(args.out / "results.json")
    return 0


def bookruns(args) -> int:
    """`python -m p2p bookruns`: train (or resume) the book runs, then export them."""
    from p2p.lab import bookruns

    for name in args.names or list(bookruns.BOOK_RUNS):
        path = bookruns.train_book_run(name, args.work, args.out, preset=args.preset, steps=args.steps, seed=args.seed,
                                       dataset=args.dataset)
        print(bookruns.describe(name, path.parent), flush=True)
    return 0


def export(args) -> int:
    """`python -m p2p export`: a generator for the in-browser editor."""
    from p2p.lab.export import export_run

    print(export_run(args.run, args.out))
    return 0


COMMANDS = {"train": train, "translate": translate, "download": download, "ablate": ablate, "troubleshoot": troubleshoot,
            "bookruns": bookruns, "export": export}


def translate_files(run_dir, images, out_dir, *, overwrite: bool = False, size: int | None = None) -> list[Path]:
    """Translate image files at their own size with a run's generator into OUT/<name>.png (chapter "The training loop").

    Folders give their image files, sorted. A file twice as wide as high is taken for an A|B pair and
    its input half is used. Every output is named and checked before the first is written: an input
    image is never replaced, an existing file only with `overwrite` (inputs of the same name from
    different folders get numbered outputs, 1.png, 1-2.png). Each image is padded up to the sides the
    generator takes (`p2p.lab.translating`, chapter "Troubleshooting your data"), translated by
    `p2p.inference.translate` and cropped back, a line on stderr saying so; `size` first resizes its
    shorter side to that many pixels. An image too large for memory is refused, naming --size.
    """
    import functools

    import numpy as np
    from PIL import Image

    from p2p import data, inference, runs
    from p2p.lab import translating
    from p2p.runtime.files import write_atomically

    if size is not None and size < 1:
        raise ValueError(f"--size {size}: give the shorter side in pixels, 1 or more")
    inputs = translating.input_files(images)
    translating.check_out_dir(out_dir)
    outputs = translating.output_paths(inputs, out_dir, overwrite=overwrite)
    generator, config = runs.load_generator(run_dir)
    jobs = translating.plan(generator, inputs, outputs, size=size)  # every input decoded and sized: no write yet
    generators = translating.Generators(generator)
    for job in jobs:
        image = translating.prepare(job, config.direction)
        output = inference.translate(generators(*job.padded), image[None])[0]  # the paper's test time: one image, dropout on
        (top, left), (height, width) = translating.crop_offsets(job.size, job.padded), job.size
        pixels = np.asarray(data.to_uint8(output[top:top + height, left:left + width]))
        if job.describe():
            print(job.describe(), file=sys.stderr)
        try:
            write_atomically(job.out, functools.partial(Image.fromarray(pixels).save, format="PNG"))
        except OSError as err:  # checked above; the disk may still fill, or the folder change, under way
            raise ValueError(f"{job.out}: cannot be written ({err.strerror}); give another --out") from err
    return [job.out for job in jobs]
