"""The command line: `python -m p2p facades|train|translate ...` (see README.md).

    python -m p2p facades OUT [--seed 0] [--size 256]
    python -m p2p train --data DIR --preset cpu --out RUN [--steps N] [--strategy mirrored] [--precision auto] [--threads 2 1]
    python -m p2p translate --run RUN IMAGE... --out DIR
    python -m p2p ablate --out DIR [--preset cpu] [--steps N] [--seeds 0 1]
    python -m p2p download NAME [--sha256 HEX] [--cache DIR]   # a dataset released with the paper
    python -m p2p bookruns [NAME ...]          # the book's shipped models (see p2p.bookruns)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv=None) -> int:
    """Parse the arguments and run one command."""
    parser = argparse.ArgumentParser(prog="python -m p2p", description="pix2pix: data, training, translation")
    commands = parser.add_subparsers(dest="command", required=True)

    facades = commands.add_parser("facades", help="write the procedural facades (train/val/test A|B files)")
    facades.add_argument("out", type=Path)
    facades.add_argument("--seed", type=int, default=0)
    facades.add_argument("--size", type=int, default=256)

    train = commands.add_parser("train", help="train or resume a run")
    train.add_argument("--data", type=Path, required=True, help="folder of A|B files, or with train/ (and val/) in it")
    train.add_argument("--preset", default="cpu", help="paper, cpu or tiny")
    train.add_argument("--out", type=Path, required=True, help="run folder; an existing one is resumed")
    train.add_argument("--steps", type=int, help="train steps (default: the preset's epochs)")
    train.add_argument("--direction", default="BtoA", choices=["AtoB", "BtoA"])
    train.add_argument("--log-every", type=int, default=50, help="steps per metrics.csv row")
    train.add_argument("--checkpoint-every", type=int, default=200, help="steps per checkpoint")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--strategy", default="default", choices=["default", "mirrored", "multi-worker", "tpu"],
                       help="tf.distribute: local GPUs (mirrored), machines named in TF_CONFIG (multi-worker), a TPU")
    train.add_argument("--precision", default="auto", choices=["auto", "float32", "mixed_float16", "mixed_bfloat16"],
                       help="auto: mixed float16 on a GPU, mixed bfloat16 on a TPU, float32 on a CPU")
    train.add_argument("--threads", type=int, nargs=2, metavar=("INTER", "INTRA"),
                       help="TensorFlow's inter-op and intra-op thread pools (0 0: its default); default: the sizes "
                            "python -m p2p.bench measured fastest for the preset on this machine, if it did")
    train.add_argument("--gan-update", default="sequential", choices=["sequential", "simultaneous"],
                       help="D's step then G's against the updated D (PyTorch), or both from one D pass (Lua, TF tutorial)")

    translate = commands.add_parser("translate", help="translate images with a trained run")
    translate.add_argument("--run", type=Path, required=True)
    translate.add_argument("images", type=Path, nargs="+", help="input images, or A|B pair files")
    translate.add_argument("--out", type=Path, required=True)

    ablate = commands.add_parser("ablate", help="re-run the paper's three ablation tables (resumable)")
    ablate.add_argument("--out", type=Path, required=True, help="results folder; an existing one is resumed")
    ablate.add_argument("--preset", default="cpu")
    ablate.add_argument("--steps", type=int, help="train steps per run (default: the preset's epochs)")
    ablate.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ablate.add_argument("--segmenter-steps", type=int, default=1000, help="train steps of the FCN-score segmenter")

    download = commands.add_parser("download", help="download and unpack a dataset released with the paper")
    download.add_argument("name", help="facades, cityscapes, maps, edges2shoes, edges2handbags or night2day")
    download.add_argument("--sha256", help="the archive's expected sha256; a mismatch is refused and the file removed")
    download.add_argument("--cache", type=Path, help="where to unpack it (default $P2P_CACHE or ~/.cache/p2p)")
    download.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the server before giving up")

    commands.add_parser("bookruns", help="train and export the book runs (p2p.bookruns)", add_help=False)

    export = commands.add_parser("export", help="write a generator for the Play page's in-browser editor (p2p.export)")
    export.add_argument("run", help="a run folder, or a book run's name (l1-cgan, ...)")
    export.add_argument("out", type=Path, help="folder for generator.json and generator.bin")

    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["bookruns"]:
        from p2p import bookruns

        return bookruns.main(argv[1:])
    args = parser.parse_args(argv)
    if args.command == "facades":
        from p2p.facades import make_facades

        print(make_facades(args.out, seed=args.seed, size=args.size))
        return 0

    from p2p import data, devices, runs, training

    try:
        if args.command == "train":
            if args.threads:
                devices.set_thread_pools(*args.threads)
            else:
                devices.use_measured_thread_pools(args.preset, verbose=True)
            options = {"gan_update": args.gan_update} if args.gan_update != "sequential" else {}
            training.train(
                args.data, args.out, args.preset, steps=args.steps, direction=args.direction,
                log_every=args.log_every, checkpoint_every=args.checkpoint_every, seed=args.seed,
                strategy=args.strategy, precision=args.precision, **options,
            )
            print(args.out)
        elif args.command == "download":
            print(data.download(args.name, args.cache, sha256=args.sha256, timeout=args.timeout))
        elif args.command == "ablate":
            from p2p.ablate import format_table, run_ablations

            devices.use_measured_thread_pools(args.preset, verbose=True)

            results = run_ablations(args.out, args.preset, steps=args.steps, seeds=args.seeds,
                                    segmenter_steps=args.segmenter_steps)
            for table in results["tables"]:
                print(format_table(results, table), end="\n\n")
            print(args.out / "results.json")
        elif args.command == "export":
            from p2p.export import export_run

            print(export_run(args.run, args.out))
        else:
            for path in translate_files(args.run, args.images, args.out):
                print(path)
    except (data.DataError, FileNotFoundError, ValueError, ConnectionError, training.NonFiniteLoss, runs.RunInUse,
            runs.DiskFull) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # train has said where it stopped and saved a checkpoint
        return 130
    return 0


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
            image, _ = data.split_pair(image, config["direction"])
        image = data.resize(image, config["preset"]["image_size"])
        output = translate(generator, image[None])[0]  # test time as in the paper: one image, dropout on
        path = out_dir / f"{Path(image_path).stem}.png"
        for n in range(2, len(written) + 2):  # two inputs of the same name (a/1.jpg, b/1.jpg): 1.png, 1-2.png
            if path not in written:
                break
            path = out_dir / f"{Path(image_path).stem}-{n}.png"
        tf.io.write_file(str(path), tf.io.encode_png(data.to_uint8(output)))
        written.append(path)
    return written


if __name__ == "__main__":
    sys.exit(main())
