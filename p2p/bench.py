"""Benchmark: p2p's train step against the plain recipe, lever by lever, on this machine.

    python -m p2p.bench [--configs paper cpu] [--repeats 3] [--seconds 4] [--json bench.json]

For each configuration (a preset: "paper" is 256 px with ngf = ndf = 64, "cpu" is the laptop
preset) it trains the same models, on procedural facades, in several ways, each warmed up
(tracing, compilation, filling the shuffle buffer) and then timed in interleaved repeats
(this machine's speed drifts, so every variant sees the same drift):

- plain recipe: a `tf.function` with GradientTapes, as in the TensorFlow tutorial, doing the
  paper's D step then G step; Keras' Adam; no XLA; the tutorial's uncached input pipeline;
- the plain recipe with one lever each: the cached pipeline, the fused Adam, XLA;
- p2p: `Pix2Pix.train_step` as `fit` runs it, with p2p's defaults (cached pipeline, fused
  Adam, XLA only with a GPU or TPU); and p2p with XLA forced on;
- p2p in child processes with other thread-pool sizes (`--threads`, set before TensorFlow starts).

It also measures inference (the generator, as at test time) and the input pipeline in images
per second, counts the convolution FLOPs of one train step from its graph, and measures this
machine's matmul GFLOP/s as the yardstick. Explained in the chapter "Scaling up".
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

from p2p import data, losses, presets, training
from p2p.facades import make_facades
from p2p.inference import translate
from p2p.pix2pix import PAPER_ADAM

PLAIN = "plain recipe"
CACHED, FUSED, XLA = LEVERS = ("+ cached pipeline", "+ fused Adam", "+ XLA")
P2P, P2P_XLA = "p2p", "p2p + XLA"
VARIANTS = (PLAIN, *LEVERS, P2P, P2P_XLA)
THREADS = ((1, 2), (2, 1))  # (inter-op, intra-op) pool sizes tried in child processes; 0 is TensorFlow's default


def plain_train_step(model, *, jit_compile: bool = False):
    """The tutorial's recipe for the paper's step: one tf.function, two GradientTapes, D's step then G's (chapter "Scaling up")."""
    generator, discriminator = model.generator, model.discriminator
    gen_optimizer, disc_optimizer = model.gen_optimizer, model.disc_optimizer

    @tf.function(jit_compile=jit_compile)
    def train_step(inputs, targets):
        with tf.GradientTape() as gen_tape:
            outputs = generator(inputs, training=True)
            with tf.GradientTape() as disc_tape:
                real = discriminator(tf.concat([inputs, targets], -1), training=True)
                fake = discriminator(tf.concat([inputs, tf.stop_gradient(outputs)], -1), training=True)
                disc_loss = losses.discriminator_loss(real, fake)
            disc_gradients = disc_tape.gradient(disc_loss, discriminator.trainable_variables)
            disc_optimizer.apply_gradients(zip(disc_gradients, discriminator.trainable_variables))
            fake = discriminator(tf.concat([inputs, outputs], -1), training=True)
            gen_gan = losses.generator_gan_loss(fake)
            gen_l1 = losses.l1_loss(targets, outputs)
            gen_total = gen_gan + model.l1_weight * gen_l1
        gen_gradients = gen_tape.gradient(gen_total, generator.trainable_variables)
        gen_optimizer.apply_gradients(zip(gen_gradients, generator.trainable_variables))
        return {"gen_total": gen_total, "gen_gan": gen_gan, "gen_l1": gen_l1, "disc": disc_loss}

    return train_step


def conv_flops(train_step, inputs, targets) -> int:
    """FLOPs of one call of a tf.function, counting its convolutions and their gradients from its graph (chapter "Scaling up").

    A convolution, its input gradient and its filter gradient each cost 2 * (output elements)
    * (kernel height * width * input channels); the element-wise work is left out. Operations
    whose results nothing uses (TensorFlow prunes them before running) are not counted.
    """
    total = 0
    for op in train_step.get_concrete_function(inputs, targets).graph.get_operations():
        if op.type not in ("Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter"):
            continue
        if not any(output.consumers() for output in op.outputs):
            continue
        output_grad = op.outputs[0] if op.type == "Conv2D" else op.inputs[2]
        kernel = op.outputs[0].shape if op.type == "Conv2DBackpropFilter" else op.inputs[1].shape
        total += 2 * int(np.prod(output_grad.shape)) * kernel[0] * kernel[1] * kernel[2]
    return total


def matmul_gflops(size: int = 2048, repeats: int = 3) -> float:
    """This machine's float32 matrix-multiply speed in GFLOP/s, the yardstick for the train step (median of repeats)."""
    a = tf.random.normal((size, size))
    b = tf.random.normal((size, size))
    matmul = tf.function(tf.linalg.matmul)
    matmul(a, b).numpy()  # warm-up
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(4):
            product = matmul(a, b)
        product.numpy()
        rates.append(4 * 2 * size**3 / (time.perf_counter() - start) / 1e9)
    return statistics.median(rates)


def _dataset(preset, folder, *, cache: bool):
    """The training pipeline of the benchmark, cached (p2p) or decoding every file every time (the tutorial)."""
    return data.paired_dataset(
        training.split_folder(folder, "train"), image_size=preset.image_size,
        batch_size=preset.batch_size, seed=0, cache=cache,
    ).repeat()


def _model(preset, *, fused: bool, jit_compile):
    """The preset's Pix2Pix from seed 0, with the fused Adam (p2p) or Keras' own Adam (the plain recipe)."""
    keras.utils.set_random_seed(0)
    model = training.build_model(dataclasses.replace(preset, jit_compile=jit_compile))
    if not fused:
        model.compile(gen_optimizer=_keras_adam(), disc_optimizer=_keras_adam(), jit_compile=model.jit_compile)
    return model


def _keras_adam():
    """Keras' Adam with the paper's settings, as the tutorial uses it."""
    return keras.optimizers.Adam(**PAPER_ADAM)


def _runner(name, preset, folder):
    """A function run(steps) that trains `steps` steps the way the variant `name` does, and waits for them."""
    if name in (P2P, P2P_XLA):
        model = _model(preset, fused=True, jit_compile=True if name == P2P_XLA else preset.jit_compile)
        model.make_train_function()  # what `fit` calls once per step
        iterator = iter(_dataset(preset, folder, cache=True))

        def step():
            return model.train_function(iterator)
    else:
        model = _model(preset, fused=name == FUSED, jit_compile=False)
        train_step = plain_train_step(model, jit_compile=name == XLA)
        iterator = iter(_dataset(preset, folder, cache=name == CACHED))

        def step():
            return train_step(*next(iterator))

    def run(steps):
        for _ in range(steps):
            logs = step()
        return float(logs["gen_l1"])  # waits for the last step to finish

    return run


def training_difference(preset, folder, steps: int = 5) -> dict[str, float]:
    """Train the same models `steps` steps as p2p and as the plain recipe on the same batches; how far apart they end.

    Returns the largest relative difference of any loss at any step, and the size of the
    difference between the two runs' weight updates relative to the size of the updates
    (Adam divides each gradient by its running size, so where a gradient is nearly zero,
    rounding alone can flip a weight's step: single weights may differ by up to the learning
    rate, the updates as a whole by far less). Explained in the chapter "Scaling up".
    """
    p2p_model = _model(preset, fused=True, jit_compile=False)
    plain_model = _model(preset, fused=False, jit_compile=False)
    p2p_start, plain_start = ([w.numpy() for w in _weights(m)] for m in (p2p_model, plain_model))
    plain_step = plain_train_step(plain_model)
    p2p_model.make_train_function()
    p2p_batches = iter(_dataset(preset, folder, cache=True))
    plain_batches = iter(_dataset(preset, folder, cache=False))
    plain_history, loss_difference = [], 0.0
    for _ in range(steps):
        p2p_logs = p2p_model.train_function(p2p_batches)  # running means over the steps so far
        plain_history.append({name: float(value) for name, value in plain_step(*next(plain_batches)).items()})
        for name, value in p2p_logs.items():
            plain_mean = np.mean([logs[name] for logs in plain_history])
            loss_difference = max(loss_difference, abs(float(value) - plain_mean) / max(abs(plain_mean), 1e-6))
    p2p_updates = np.concatenate([(w.numpy() - s).ravel() for w, s in zip(_weights(p2p_model), p2p_start)])
    plain_updates = np.concatenate([(w.numpy() - s).ravel() for w, s in zip(_weights(plain_model), plain_start)])
    update_difference = np.linalg.norm(p2p_updates - plain_updates) / np.linalg.norm(plain_updates)
    return {"losses": float(loss_difference), "updates": float(update_difference)}


def _weights(model):
    """All weights of both networks, trainable or not, in a fixed order."""
    return model.generator.weights + model.discriminator.weights


def time_interleaved(runs: dict, repeats: int, seconds: float) -> dict[str, list[float]]:
    """Calls per second of each run(n), warmed up, then timed in `repeats` rounds of about `seconds` each, in turn."""
    counts = {}
    for name, run in runs.items():
        run(2)  # warm-up: tracing, compiling, filling the shuffle buffer
        start = time.perf_counter()
        run(2)
        counts[name] = max(2, round(seconds * 2 / (time.perf_counter() - start)))
    rates = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run(counts[name])
            rates[name].append(counts[name] / (time.perf_counter() - start))
    return rates


def inference_rate(preset, folder, repeats: int, seconds: float) -> list[float]:
    """Images per second of `p2p.inference.translate` (one image, dropout on, its own BatchNorm statistics), for each repeat."""
    generator = _model(preset, fused=True, jit_compile=preset.jit_compile).generator
    inputs, _ = data.example_batch(training.split_folder(folder, "test"), 1, image_size=preset.image_size)

    def run(images):
        for _ in range(images):
            outputs = translate(generator, inputs)
        return outputs.numpy()

    return time_interleaved({"inference": run}, repeats, seconds)["inference"]


def pipeline_rates(preset, folder, repeats: int, seconds: float) -> dict[str, list[float]]:
    """Images per second that the input pipeline delivers alone, cached (p2p) and uncached (the tutorial's)."""
    iterators = {kind: iter(_dataset(preset, folder, cache=kind == "cached")) for kind in ("cached", "uncached")}
    runs = {kind: (lambda n, it=it: [next(it) for _ in range(n)]) for kind, it in iterators.items()}
    return {kind: [r * preset.batch_size for r in rates] for kind, rates in time_interleaved(runs, repeats, seconds).items()}


def bench_config(name, folder, variants, repeats, seconds, extras=True) -> dict:
    """All measurements of one preset: train rates of the variants, FLOPs, and (with extras) inference and pipeline rates."""
    preset = presets.get(name)
    rates = time_interleaved({v: _runner(v, preset, folder) for v in variants}, repeats, seconds)
    result = {
        "image_size": preset.image_size, "ngf": preset.ngf, "ndf": preset.ndf, "n_layers": preset.n_layers,
        "batch_size": preset.batch_size,
        "train_steps_per_second": {v: {"median": statistics.median(r), "repeats": r} for v, r in rates.items()},
    }
    if extras:
        model = _model(preset, fused=False, jit_compile=False)
        inputs, targets = next(iter(_dataset(preset, folder, cache=True)))
        result["conv_flops_per_step"] = conv_flops(plain_train_step(model), inputs, targets)
        result["inference_images_per_second"] = statistics.median(inference_rate(preset, folder, repeats, seconds))
        result["pipeline_images_per_second"] = {
            kind: statistics.median(r) for kind, r in pipeline_rates(preset, folder, repeats, seconds).items()
        }
    return result


def bench_threads(name, folder, repeats, seconds) -> dict[str, dict]:
    """p2p's train rate with other thread-pool sizes, each in a child process (they are fixed when TensorFlow starts)."""
    results = {}
    for inter, intra in THREADS:
        with tempfile.NamedTemporaryFile(suffix=".json") as report:
            subprocess.run(
                [sys.executable, "-m", "p2p.bench", "--configs", name, "--variants", P2P, "--no-extras",
                 "--threads", str(inter), str(intra), "--data", str(folder), "--repeats", str(repeats),
                 "--seconds", str(seconds), "--json", report.name, "--quiet"],
                check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
            )
            with open(report.name) as file:
                child = json.load(file)
        results[f"inter {inter}, intra {intra}"] = child["configs"][name]["train_steps_per_second"][P2P]
    return results


def format_table(results: dict) -> str:
    """The benchmark as a text table: one row per configuration and variant, then the other rates."""
    peak = results["matmul_gflops"]
    lines = [f"matmul: {peak:.0f} GFLOP/s (float32, 2048 x 2048)", ""]
    lines.append(f"{'config':7} {'variant':32} {'steps/s':>8} {'x plain':>8} {'GFLOP/s':>8} {'% matmul':>9}  repeats")
    for name, config in results["configs"].items():
        train = config["train_steps_per_second"]
        plain = train.get(PLAIN, {}).get("median")
        flops = config.get("conv_flops_per_step")
        rows = {**train, **{f"p2p, threads {k}": v for k, v in config.get("threads", {}).items()}}
        for variant, rate in rows.items():
            ratio = f"{rate['median'] / plain:8.2f}" if plain else f"{'':8}"
            gflops = rate["median"] * flops / 1e9 if flops else None
            achieved = f"{gflops:8.1f} {100 * gflops / peak:8.0f}%" if gflops else f"{'':8} {'':9}"
            lines.append(f"{name:7} {variant:32} {rate['median']:8.3f} {ratio} {achieved}  "
                         + " ".join(f"{r:.3f}" for r in rate["repeats"]))
    lines.append("")
    for name, config in results["configs"].items():
        if "pipeline_images_per_second" not in config:
            continue
        pipeline = config["pipeline_images_per_second"]
        trained = config["train_steps_per_second"].get(P2P, {}).get("median", float("nan")) * config["batch_size"]
        lines.append(
            f"{name:7} step {config['conv_flops_per_step'] / 1e9:.1f} GFLOP (convolutions) | inference "
            f"{config['inference_images_per_second']:.1f} images/s | pipeline {pipeline['cached']:.0f} images/s "
            f"cached, {pipeline['uncached']:.0f} uncached = {pipeline['cached'] / trained:.0f}x p2p's training rate"
        )
    return "\n".join(lines)


def _commit() -> str | None:
    """The git commit of the code measured ("-dirty" when it had uncommitted changes), when run from a clone."""
    try:
        return subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True,
                              cwd=os.path.dirname(__file__), check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def main(argv=None) -> int:
    """Run the benchmark, print its table and optionally write the results as JSON."""
    parser = argparse.ArgumentParser(prog="python -m p2p.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["paper", "cpu"], choices=list(presets.PRESETS))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds per variant (interleaved)")
    parser.add_argument("--seconds", type=float, default=4.0, help="about how long each timed round lasts")
    parser.add_argument("--threads", type=int, nargs=2, metavar=("INTER", "INTRA"),
                        help="TensorFlow's inter-op and intra-op pool sizes (default: its own choice)")
    parser.add_argument("--no-threads", dest="child_threads", action="store_false",
                        help="skip the child processes that try other thread-pool sizes")
    parser.add_argument("--no-extras", dest="extras", action="store_false",
                        help="train rates only: no FLOP count, inference or pipeline rates")
    parser.add_argument("--data", help="a facades folder at the preset's size (default: made in a temporary folder)")
    parser.add_argument("--json", help="write the results to this file")
    parser.add_argument("--quiet", action="store_true", help="print nothing (for child processes)")
    args = parser.parse_args(argv)
    if args.threads:
        training.set_thread_pools(*args.threads)

    results = {
        "command": "python -m p2p.bench " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "commit": _commit(), "machine": platform.platform(), "processor": platform.processor(),
        "cpu_count": os.cpu_count(), "tensorflow": tf.__version__,
        "accelerator": training.accelerator() or "CPU",
        "threads": args.threads or "default",
        "matmul_gflops": matmul_gflops(repeats=args.repeats) if args.extras else None,
        "configs": {},
    }
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.configs:
            folder = args.data or make_facades(
                os.path.join(scratch, name), size=presets.get(name).image_size, progress=False
            )
            config = bench_config(name, folder, args.variants, args.repeats, args.seconds, args.extras)
            if args.child_threads and not args.threads and P2P in args.variants:
                config["threads"] = bench_threads(name, folder, args.repeats, args.seconds)
            results["configs"][name] = config
            if not args.quiet:
                print(f"{name}: done", file=sys.stderr, flush=True)
    if args.json:
        with open(args.json, "w") as file:
            json.dump(results, file, indent=2)
    if not args.quiet:
        print(format_table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
