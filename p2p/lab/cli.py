"""The lab's commands of `python -m p2p`: the book's data, experiments and tools (see README.md).

    python -m p2p facades OUT [--seed 0] [--size 256]
    python -m p2p download NAME [--sha256 HEX] [--cache DIR]   # a dataset released with the paper
    python -m p2p ablate --out DIR [--preset cpu] [--steps N] [--seeds 0 1]
    python -m p2p troubleshoot --out DIR [--preset cpu] [--steps N] [--seeds 0 1 2]
    python -m p2p bookruns [NAME ...] [--replace-shipped]   # the book's models (p2p.lab.bookruns)
    python -m p2p export RUN OUT [--overwrite] # a generator for the Play page's in-browser editor
    python -m p2p bench [--configs paper cpu] [--json FILE]   # p2p's train step against the TF tutorial's

`train` and `translate` are the core's (`p2p.__main__`), which registers these beside them.
"""

from __future__ import annotations

import sys

from p2p.config import PRESETS
from p2p.runtime.arguments import SEED, path, positive, whole


def register(commands) -> None:
    """Add the lab's commands to `python -m p2p`'s sub-commands (`p2p.__main__`)."""

    facades = commands.add_parser("facades", help="write the procedural facades (train/val/test A|B files)")
    facades.add_argument("out", type=path)
    facades.add_argument("--seed", type=SEED, default=0)
    facades.add_argument("--size", type=whole(16, 4096), default=256, help="pixels per side of each half")

    download = commands.add_parser("download", help="download and unpack a dataset released with the paper")
    download.add_argument("name", help="facades, cityscapes, maps, edges2shoes, edges2handbags or night2day")
    download.add_argument("--sha256", help="the archive's expected sha256: 64 hex digits, alone or after sha256:; a mismatch "
                                           "is refused (and a download removed, never an archive you copied)")
    download.add_argument("--cache", type=path, help="where to unpack it (default $P2P_CACHE or ~/.cache/p2p)")
    download.add_argument("--timeout", type=positive, default=60.0,
                          help="seconds (default 60, at most 1,000,000) in which the server must answer whole (status line "
                               "and headers), then send at least 64 KiB (or the rest) each time; a slower server is given up "
                               "and nothing of the download kept")

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
    bookruns.add_argument("--out", type=path, default=None, help="where the compact runs are exported (default WORK/trained)")
    bookruns.add_argument("--replace-shipped", action="store_true",
                          help="export into p2p/lab/trained, replacing the shipped runs that the chapters load")
    bookruns.add_argument("--preset", default="book", choices=list(PRESETS),
                          help="another preset, for a quick look (tiny, cpu) or a GPU (paper)")
    bookruns.add_argument("--steps", type=whole(1), help="train steps (default: the preset's epochs)")
    bookruns.add_argument("--seed", type=SEED, default=0)
    bookruns.add_argument("--dataset", default="procedural", help="a released dataset (facades, maps, ...) or a folder")

    export = commands.add_parser("export", help="write a generator for the Play page's in-browser editor (p2p.lab.export)")
    export.add_argument("run", help="a run folder, or a book run's name (l1-cgan, ...)")
    export.add_argument("out", type=path, help="folder for generator.json and generator.bin (an earlier export is replaced)")
    export.add_argument("--overwrite", action="store_true", help="replace a generator.json or .bin that export did not write")

    bench = commands.add_parser("bench", add_help=False,
                                help="p2p's train step against the TensorFlow tutorial's (python -m p2p bench --help)")
    bench.set_defaults(takes_extra=True)
    for name in ("facades", "download", "ablate", "troubleshoot", "bookruns", "export", "bench"):
        commands.choices[name].set_defaults(handler=globals()[name])




def facades(args) -> int:
    """`python -m p2p facades`: the procedural facades, without TensorFlow (it takes seconds to import)."""
    from p2p.lab.facades import make_facades

    try:
        folder = make_facades(args.out, seed=args.seed, size=args.size)
    except KeyboardInterrupt:  # each image is written whole, and the folder records that it is not complete
        print(f"interrupted: {args.out} is not complete (each image in it is whole); run the same command again to finish it",
              file=sys.stderr)
        return 130
    print(folder)
    return 0


def bench(args, options) -> int:
    """`python -m p2p bench`: the benchmark, which parses its own options."""
    from p2p.lab import bench

    return bench.main(options)


def _measured_thread_pools(preset: str) -> None:
    """The thread pools the benchmark measured fastest for `preset` here, for the lab's long runs."""
    from p2p.lab import threads

    threads.use_measured_thread_pools(preset, verbose=True)


def download(args) -> int:
    """`python -m p2p download`: a released dataset, checked, into the cache."""
    from p2p.lab import datasets

    try:
        print(datasets.download(args.name, args.cache, sha256=args.sha256, timeout=args.timeout))
    except KeyboardInterrupt:  # the half-downloaded archive and a half-unpacked folder are already removed
        print(f"interrupted: {args.name} is not ready (nothing half-downloaded is kept); run the same command again",
              file=sys.stderr)
        return 130
    return 0


def ablate(args) -> int:
    """`python -m p2p ablate`: the paper's three tables, resumable."""
    _measured_thread_pools(args.preset)
    from p2p.lab.ablate import format_table, run_ablations

    results = run_ablations(args.out, args.preset, steps=args.steps, seeds=args.seeds, segmenter_steps=args.segmenter_steps)
    for table in results["tables"]:
        print(format_table(results, table), end="\n\n")
    print(args.out / "results.json")
    return 0


def troubleshoot(args) -> int:
    """`python -m p2p troubleshoot`: the troubleshooting chapters' short runs, resumable."""
    _measured_thread_pools(args.preset)
    from p2p.lab.troubleshooting import VARIANTS, format_rows, run_troubleshooting

    results = run_troubleshooting(args.out, args.preset, steps=args.steps, seeds=args.seeds)
    print(format_rows(results, VARIANTS))
    print(f"{results['cpu_seconds'] / 60:.1f} CPU minutes, {results['wall_seconds'] / 60:.1f} minutes in all")
    print(args.out / "results.json")
    return 0


def bookruns(args) -> int:
    """`python -m p2p bookruns`: train (or resume) the book runs, then export them."""
    from p2p.lab import bookruns

    names = args.names or list(bookruns.BOOK_RUNS)
    for name in names:  # every name and folder checked before anything runs
        bookruns.export_folder(name, args.work, args.out, replace_shipped=args.replace_shipped)
    _measured_thread_pools(args.preset)
    for name in names:
        path = bookruns.train_book_run(name, args.work, args.out, preset=args.preset, steps=args.steps, seed=args.seed,
                                       dataset=args.dataset, replace_shipped=args.replace_shipped)
        print(bookruns.describe(name, path.parent), flush=True)
    return 0


def export(args) -> int:
    """`python -m p2p export`: a generator for the in-browser editor."""
    from p2p.lab.export import export_run

    print(export_run(args.run, args.out, overwrite=args.overwrite))
    return 0


