"""Benchmark: train steps per second of each preset's `fit` on this machine.

    python -m p2p.bench [--presets cpu paper] [--steps 20] [--repeats 3] [--json bench.json]

Each preset trains on procedural facades at its own size; the first `fit` call (tracing and
compilation) is a warm-up and is not timed; the median of the repeats is reported.
Explained in the chapter "Scaling up".
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time

import keras


def train_steps_per_second(preset, data_dir, steps: int, repeats: int) -> list[float]:
    """Time `repeats` fits of `steps` steps each, after one warm-up fit; returns steps/s per repeat."""
    from p2p import data, training

    keras.utils.set_random_seed(0)
    model = training.build_model(preset)
    dataset = data.paired_dataset(
        training.split_folder(data_dir, "train"), image_size=preset.image_size, batch_size=preset.batch_size, seed=0
    ).repeat()
    model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False)  # warm-up
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False)
        rates.append(steps / (time.perf_counter() - start))
    return rates


def main(argv=None) -> int:
    """Run the benchmark and print a table; optionally write the results as JSON."""
    from p2p import presets
    from p2p.facades import make_facades

    parser = argparse.ArgumentParser(prog="python -m p2p.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["cpu", "paper"], choices=list(presets.PRESETS))
    parser.add_argument("--steps", type=int, default=20, help="steps per timed repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args(argv)

    results = {"machine": platform.platform(), "processor": platform.processor(), "presets": {}}
    print(f"{'preset':8} {'image':>5} {'steps/s':>8} {'images/s':>9}  repeats")
    for name in args.presets:
        preset = presets.get(name)
        with tempfile.TemporaryDirectory() as folder:
            make_facades(folder, size=preset.image_size, progress=False)
            rates = train_steps_per_second(preset, folder, args.steps, args.repeats)
        median = statistics.median(rates)
        results["presets"][name] = {"steps_per_second": median, "repeats": rates, "batch_size": preset.batch_size}
        print(f"{name:8} {preset.image_size:5d} {median:8.2f} {median * preset.batch_size:9.2f}  "
              + " ".join(f"{r:.2f}" for r in rates), flush=True)
    if args.json:
        with open(args.json, "w") as file:
            json.dump(results, file, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
