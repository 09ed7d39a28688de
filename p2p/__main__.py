"""`python -m p2p <command>`: `train`, `translate` and the lab's commands (README.md).

    python -m p2p train --data DIR --out RUN [--preset cpu] [--steps N]
                        [--set l1_weight=10]
    python -m p2p translate --run RUN IMAGE|FOLDER... --out DIR [--size N] [--overwrite]
                            [--pairs]

The lab registers its own (facades, download, ablate, troubleshoot, bookruns, export,
bench).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from p2p.config import PRESETS, Config
from p2p.runtime.arguments import SEED, THREADS, path, refuse, whole


def main(argv=None) -> int:
    """Parse the arguments and run one command; an error is one line and exit code 2."""
    from p2p.lab import cli as lab  # the commands of the book's tools

    parser = argparse.ArgumentParser(
        prog="python -m p2p",
        description="pix2pix: data, training, translation, and the book's tools")
    commands = parser.add_subparsers(dest="command", required=True)
    add_train(commands)
    add_translate(commands)
    lab.register(commands)
    args, extra = parser.parse_known_args(sys.argv[1:] if argv is None else list(argv))
    if extra and not getattr(args, "takes_extra", False):  # only bench parses its own
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return args.handler(
            args, *([extra] if getattr(args, "takes_extra", False) else []))
    except (ValueError, OSError, ArithmeticError, RuntimeError) as err:  # one line each
        return refuse(err)
    except KeyboardInterrupt:  # train has said where it stopped and saved a checkpoint
        return 130


def add_train(commands) -> None:
    """`python -m p2p train`: train or resume a run (chapter "Running a run")."""
    train = commands.add_parser("train", help="train or resume a run")
    train.add_argument("--data", type=path, required=True,
                       help="folder of A|B files, or with train/ (and val/) in it")
    train.add_argument("--preset", default="cpu", choices=list(PRESETS))
    train.add_argument("--out", type=path, required=True,
                       help="run folder: a new or empty one starts a run, "
                            "a run folder resumes it")
    train.add_argument("--steps", type=whole(1),
                       help="train steps (default: the preset's epochs)")
    train.add_argument("--direction", default="BtoA", choices=["AtoB", "BtoA"])
    train.add_argument("--seed", type=SEED, default=0)
    train.add_argument("--precision", default="auto",
                       choices=["auto", "float32", "mixed_float16", "mixed_bfloat16"],
                       help="auto: mixed float16 on a GPU, mixed bfloat16 on a TPU, "
                            "else float32")
    train.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                       help="any other setting of p2p.config.Config, "
                            "e.g. --set l1_weight=10")
    train.add_argument("--log-every", type=whole(1), default=50,
                       help="steps per metrics.csv row")
    train.add_argument("--checkpoint-every", type=whole(1), default=200,
                       help="steps per checkpoint, at least --log-every")
    train.add_argument("--strategy", default="default",
                       choices=["default", "mirrored", "multi-worker", "tpu"],
                       help="tf.distribute: local GPUs (mirrored), machines named in "
                            "TF_CONFIG (multi-worker), a TPU")
    train.add_argument("--threads", type=THREADS, nargs=2, metavar=("INTER", "INTRA"),
                       help="TensorFlow's inter-op and intra-op thread pools "
                            "(default 0 0: its own)")
    train.set_defaults(handler=train_command)


def settings_from(assignments: list[str]) -> dict:
    """`--set NAME=VALUE` as Config settings, each value read as JSON if it is one."""
    fields = {field.name for field in dataclasses.fields(Config)}
    settings = {}
    for assignment in assignments:
        name, equals, value = assignment.partition("=")
        if not equals or name not in fields:
            raise ValueError(f"--set {assignment}: give NAME=VALUE with NAME one of "
                             f"{', '.join(sorted(fields))} (the lab's variants of the "
                             "paper train through p2p.lab.variants.train)")
        try:
            settings[name] = json.loads(value)
        except json.JSONDecodeError:
            settings[name] = value
    return settings


def train_command(args) -> int:
    """Train or resume the run `args` describe, then print its folder."""
    from p2p import training
    from p2p.runtime import devices

    if args.threads:
        devices.set_thread_pools(*args.threads)
    settings = {"direction": args.direction, "seed": args.seed,
                "precision": args.precision, **settings_from(args.set)}
    if args.steps is not None:
        settings["steps"] = args.steps
    training.train(args.data, args.out, args.preset, log_every=args.log_every,
                   checkpoint_every=args.checkpoint_every, strategy=args.strategy,
                   **settings)
    print(args.out)
    return 0


def add_translate(commands) -> None:
    """`python -m p2p translate`: images at their own size (chapter "Running a run")."""
    translate = commands.add_parser(
        "translate", help="translate images with a trained run, each at its own size")
    translate.add_argument("--run", type=path, required=True)
    translate.add_argument("images", type=path, nargs="+",
                           help="input images, or folders of them")
    translate.add_argument("--out", type=path, required=True,
                           help="folder for OUT/<name>.png (created if missing)")
    translate.add_argument("--overwrite", action="store_true",
                           help="replace earlier outputs of translate in --out "
                                "(never an input image, nor a file it did not write)")
    translate.add_argument("--pairs", action="store_true",
                           help="the inputs are pairs as train reads them (A|B files, "
                                "or folders A/ and B/): translate each one's input "
                                "side; without it, each image is translated whole")
    translate.add_argument("--size", type=int, metavar="N",
                           help="resize each image so that its shorter side is "
                                "N pixels first")
    translate.set_defaults(handler=translate_command)


def translate_command(args) -> int:
    """Translate the images `args` name with a run's generator; print each output."""
    from p2p.lab.translating import translate_files  # padding, naming and checks

    for written in translate_files(args.run, args.images, args.out,
                                   overwrite=args.overwrite, size=args.size,
                                   pairs=args.pairs):
        print(written)
    return 0


if __name__ == "__main__":
    sys.exit(main())
