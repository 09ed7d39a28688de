"""The command line, `python -m p2p <command>`: data, training and translation, and the book's experiments.

    python -m p2p facades OUT [--seed 0] [--size 256]
    python -m p2p train --data DIR --preset cpu --out RUN [--steps N] [--set l1_weight=10 ...] [--strategy mirrored]
    python -m p2p translate --run RUN IMAGE... --out DIR
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
    if args.command == "facades":
        from p2p.lab.facades import make_facades

        print(make_facades(args.out, seed=args.seed, size=args.size))
        return 0

    from p2p import data, runs, training
    from p2p.lab import threads

    try:
        if getattr(args, "threads", None):
            threads.set_thread_pools(*args.threads)
        elif hasattr(args, "preset"):
            threads.use_measured_thread_pools(args.preset, verbose=True)
        return COMMANDS[args.command](args)
    except (data.DataError, FileNotFoundError, ValueError, ConnectionError, training.NonFiniteLoss, runs.RunInUse,
            runs.DiskFull) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # train has said where it stopped and saved a checkpoint
        return 130


def parser() -> argparse.ArgumentParser:
    """The command line's parser, one sub-command each."""
    parser = argparse.ArgumentParser(prog="python -m p2p", description="pix2pix: data, training, translation")
    commands = parser.add_subparsers(dest="command", required=True)

    facades = commands.add_parser("facades", help="write the procedural facades (train/val/test A|B files)")
    facades.add_argument("out", type=Path)
    facades.add_argument("--seed", type=int, default=0)
    facades.add_argument("--size", type=int, default=256)

    train = commands.add_parser("train", help="train or resume a run")
    train.add_argument("--data", type=Path, required=True, help="folder of A|B files, or with train/ (and val/) in it")
    train.add_argument("--preset", default="cpu", choices=list(PRESETS))
    train.add_argument("--out", type=Path, required=True, help="run folder; an existing one is resumed")
    train.add_argument("--steps", type=int, help="train steps (default: the preset's epochs)")
    train.add_argument("--direction", default="BtoA", choices=["AtoB", "BtoA"])
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--precision", default="auto", choices=["auto", "float32", "mixed_float16", "mixed_bfloat16"],
                       help="auto: mixed float16 on a GPU, mixed bfloat16 on a TPU, float32 on a CPU")
    train.add_argument("--gan-update", default="sequential", choices=["sequential", "simultaneous"],
                       help="D's step then G's against the updated D (PyTorch), or both from one D pass (Lua, TF tutorial)")
    train.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                       help="any other setting of p2p.config.Config, e.g. --set l1_weight=10 --set skips=false")
    train.add_argument("--log-every", type=int, default=50, help="steps per metrics.csv row")
    train.add_argument("--checkpoint-every", type=int, default=200, help="steps per checkpoint")
    train.add_argument("--strategy", default="default", choices=["default", "mirrored", "multi-worker", "tpu"],
                       help="tf.distribute: local GPUs (mirrored), machines named in TF_CONFIG (multi-worker), a TPU")
    train.add_argument("--threads", type=int, nargs=2, metavar=("INTER", "INTRA"),
                       help="TensorFlow's inter-op and intra-op thread pools (0 0: its default); default: the sizes "
                            "python -m p2p bench measured fastest for the preset on this machine, if it did")

    translate = commands.add_parser("translate", help="translate images with a trained run")
    translate.add_argument("--run", type=Path, required=True)
    translate.add_argument("images", type=Path, nargs="+", help="input images, or A|B pair files")
    translate.add_argument("--out", type=Path, required=True)

    download = commands.add_parser("download", help="download and unpack a dataset released with the paper")
    download.add_argument("name", help="facades, cityscapes, maps, edges2shoes, edges2handbags or night2day")
    download.add_argument("--sha256", help="the archive's expected sha256; a mismatch is refused and the file removed")
    download.add_argument("--cache", type=Path, help="where to unpack it (default $P2P_CACHE or ~/.cache/p2p)")
    download.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the server before giving up")

    for name, description, seeds in (("ablate", "re-run the paper's three ablation tables", [0, 1]),
                                     ("troubleshoot", "train the troubleshooting chapter's short runs", [0, 1, 2])):
        experiment = commands.add_parser(name, help=f"{description} (resumable)")
        experiment.add_argument("--out", type=Path, required=True, help="results folder; an existing one is resumed")
        experiment.add_argument("--preset", default="cpu", choices=list(PRESETS))
        experiment.add_argument("--steps", type=int, help="train steps per run (default: the preset's epochs)")
        experiment.add_argument("--seeds", type=int, nargs="+", default=seeds)
        if name == "ablate":
            experiment.add_argument("--segmenter-steps", type=int, default=1000, help="train steps of the FCN-score segmenter")

    bookruns = commands.add_parser("bookruns", help="train and export the book runs (p2p.lab.bookruns)")
    bookruns.add_argument("names", nargs="*", help="book runs to train (default: all)")
    bookruns.add_argument("--work", default="book/runs", help="where the resumable training runs go")
    bookruns.add_argument("--out", default=None, help="where the compact runs are exported (default p2p/lab/trained)")
    bookruns.add_argument("--preset", default="book", choices=list(PRESETS),
                          help="another preset, for a quick look (tiny, cpu) or a GPU (paper)")
    bookruns.add_argument("--steps", type=int, help="train steps (default: the preset's epochs)")
    bookruns.add_argument("--seed", type=int, default=0)
    bookruns.add_argument("--dataset", default="procedural", help="a released dataset (facades, maps, ...) or a folder")

    export = commands.add_parser("export", help="write a generator for the Play page's in-browser editor (p2p.lab.export)")
    export.add_argument("run", help="a run folder, or a book run's name (l1-cgan, ...)")
    export.add_argument("out", type=Path, help="folder for generator.json and generator.bin")

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
    """`python -m p2p translate`: translate image files with a run's generator."""
    for path in translate_files(args.run, args.images, args.out):
        print(path)
    return 0


def download(args) -> int:
    """`python -m p2p download`: a released dataset, checked, into the cache."""
    from p2p.lab import datasets

    print(datasets.download(args.name, args.cache, sha256=args.sha256, timeout=args.timeout))
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
    """`python -m p2p troubleshoot`: the troubleshooting chapter's short runs, resumable."""
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


def translate_files(run_dir, images, out_dir) -> list[Path]:
    """Translate image files with a run's generator; write OUT/<name>.png for each (chapter "The training loop").

    A file twice as wide as high is taken for an A|B pair and its input half is used. Inputs of
    the same name from different folders get numbered outputs (1.png, 1-2.png), never overwritten.
    """
    import tensorflow as tf

    from p2p import data, runs
    from p2p.inference import translate

    generator, config = runs.load_generator(run_dir)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for image_path in images:
        image = data.load_image(image_path)
        if image.shape[1] == 2 * image.shape[0]:
            image, _ = data.split_pair(image, config.direction)
        image = data.resize(image, config.image_size)
        output = translate(generator, image[None])[0]  # test time as in the paper: one image, dropout on
        path = out_dir / f"{Path(image_path).stem}.png"
        for n in range(2, len(written) + 2):  # two inputs of the same name (a/1.jpg, b/1.jpg): 1.png, 1-2.png
            if path not in written:
                break
            path = out_dir / f"{Path(image_path).stem}-{n}.png"
        tf.io.write_file(str(path), tf.io.encode_png(data.to_uint8(output)))
        written.append(path)
    return written
