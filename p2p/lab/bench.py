"""Benchmark: p2p's train step against the TensorFlow tutorial's, lever by lever, on this machine.

    python -m p2p bench [--configs paper cpu] [--repeats 3] [--seconds 4] [--json bench.json]
    python -m p2p bench --profile 20 --variants "tutorial step" p2p    # where a step's time goes

For each configuration (a preset: "paper" is 256 px with ngf = ndf = 64, "cpu" is the laptop
preset) it trains the same models, on procedural facades, in several ways, each warmed up
(tracing, compilation, filling the shuffle buffer) and then timed in interleaved repeats
(this machine's speed drifts, so every variant sees the same drift). All compute in float32,
the paper's arithmetic, but the last:

- tutorial step (the baseline): the TensorFlow tutorial's step (`p2p.lab.reference.tutorial_step`),
  Keras' Adam, no XLA, the tutorial's uncached input pipeline;
- paper step, plain: the paper's step in PyTorch's order (`p2p.lab.reference.paper_step`), the
  same plain way; then with one lever each: the cached pipeline, the fused Adam
  (`p2p.lab.fused_adam.FusedAdam`), XLA;
- p2p: `Pix2Pix.train_step` in a `tf.function`, as `fit` runs it, with p2p's defaults: the cached
  pipeline, Keras' own Adam (`p2p.optimizers.paper_optimizer`), XLA only with a GPU or TPU;
- p2p + fused Adam: the same model with FusedAdam for both optimizers. p2p's default was
  FusedAdam until it became Keras' Adam; this row against "p2p" is what that costs;
- p2p, simultaneous update (`gan_update="simultaneous"`, `p2p.lab.variants`), p2p + XLA (forced
  on), and p2p's simultaneous update with layers computing in bfloat16
  (`precision="mixed_bfloat16"`; fast on CPUs with bfloat16 instructions, but no longer the
  paper's float32 arithmetic);
- p2p in child processes with other thread-pool sizes (`--threads`, set before TensorFlow
  starts); their rates are compared with the parent's tutorial step.

It also measures inference (the generator, as at test time) and the input pipeline in images
per second, counts the convolution FLOPs of each kind of step from its graph, and measures this
machine's matmul GFLOP/s as the yardstick. The steps it compares against live in
`p2p.lab.reference`. Explained in the appendix "Scaling up".
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

from p2p import data
from p2p.config import PRESETS, Config, get_preset
from p2p.inference import translate
from p2p.lab import records, reference, threads
from p2p.lab.facades import make_facades
from p2p.lab.fused_adam import FusedAdam
from p2p.lab.variants import build_model, configure
from p2p.optimizers import PAPER_ADAM
from p2p.runtime import devices, files

TUTORIAL, PAPER = "tutorial step", "paper step, plain"
CACHED, FUSED, XLA = LEVERS = ("+ cached pipeline", "+ fused Adam", "+ XLA")
P2P, P2P_FUSED = "p2p", "p2p + fused Adam"  # p2p's default (Keras' Adam), and the same with FusedAdam
P2P_SIMULTANEOUS, P2P_XLA = "p2p, simultaneous update", "p2p + XLA"
P2P_BFLOAT16 = "p2p, simultaneous, mixed bfloat16"  # not the paper's arithmetic: a lever, not a faithful setting
P2P_VARIANTS = (P2P, P2P_FUSED, P2P_SIMULTANEOUS, P2P_XLA, P2P_BFLOAT16)  # Pix2Pix.train_step, as `fit` runs it
VARIANTS = (TUTORIAL, PAPER, *LEVERS, *P2P_VARIANTS)
ONE_D_PASS_FEWER = (TUTORIAL, P2P_SIMULTANEOUS, P2P_BFLOAT16)  # G's loss reuses D's verdict: the tutorial's FLOPs
THREADS = ((1, 2), (2, 1))  # (inter-op, intra-op) pool sizes tried in child processes; 0 is TensorFlow's default


def conv_flops(train_step, inputs, targets) -> int:
    """FLOPs of one call of a tf.function, counting its convolutions and their gradients from its graph (appendix "Scaling up").

    A convolution, its input gradient and its filter gradient each cost 2 * (output elements)
    * (kernel height * width * input channels); the element-wise work is left out. Only
    operations that TensorFlow runs are counted: those the function's outputs or its updates
    (assignments) depend on. A tape that records more than its gradient needs (the tutorial's
    D tape also records G's forward pass) adds gradient operations that TensorFlow prunes.
    """
    graph = train_step.get_concrete_function(inputs, targets).graph
    total = 0
    for op in _live_operations(graph):
        if op.type not in ("Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter"):
            continue
        output_grad = op.outputs[0] if op.type == "Conv2D" else op.inputs[2]
        kernel = op.outputs[0].shape if op.type == "Conv2DBackpropFilter" else op.inputs[1].shape
        total += 2 * int(np.prod(output_grad.shape)) * kernel[0] * kernel[1] * kernel[2]
    return total


def _live_operations(graph) -> set:
    """The operations of a function graph that its outputs or side effects depend on: what TensorFlow runs."""
    live, pending = set(), [t.op for t in graph.outputs] + list(graph.control_outputs)
    while pending:
        op = pending.pop()
        if op not in live:
            live.add(op)
            pending.extend(t.op for t in op.inputs)
            pending.extend(op.control_inputs)
    return live


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


def _dataset(config: Config, folder, *, cache: bool):
    """The training pipeline of the benchmark, cached (p2p) or decoding every file every time (the tutorial)."""
    return data.paired_dataset(
        data.split_folder(folder, "train"), image_size=config.image_size,
        batch_size=config.batch_size, seed=0, cache=cache,
    ).repeat()


def _model(config: Config, *, fused: bool = False, jit_compile: bool | str = False, gan_update: str = "sequential",
           precision: str = "float32"):
    """The config's model from seed 0 (`p2p.lab.variants.build_model`), with `gan_update` and `precision`.

    Both optimizers are p2p's default, Keras' Adam with the paper's settings, or with `fused`
    FusedAdam with the same settings. The learning rate is constant: the config sets no `steps`
    for a decay to span.
    """
    keras.utils.set_random_seed(0)
    model = build_model(configure(config, gan_update=gan_update, precision=precision), jit_compile=jit_compile)
    if fused:
        model.compile(gen_optimizer=FusedAdam(**PAPER_ADAM), disc_optimizer=FusedAdam(**PAPER_ADAM),
                      jit_compile=model.jit_compile)
    return model


def _runner(name, config: Config, folder):
    """A function run(steps) that trains `steps` steps the way the variant `name` does, and waits for them."""
    if name in P2P_VARIANTS:
        simultaneous = name in (P2P_SIMULTANEOUS, P2P_BFLOAT16)
        model = _model(config, fused=name == P2P_FUSED, jit_compile=True if name == P2P_XLA else "auto",
                       gan_update="simultaneous" if simultaneous else "sequential",
                       precision="mixed_bfloat16" if name == P2P_BFLOAT16 else "float32")
        train_step = tf.function(model.train_step, jit_compile=model.jit_compile)  # what `fit` runs each step
        iterator = iter(_dataset(config, folder, cache=True))

        def step():
            return train_step(next(iterator))
    else:
        model = _model(config, fused=name == FUSED, jit_compile=False)
        make_step = reference.tutorial_step if name == TUTORIAL else reference.paper_step
        train_step = make_step(model, jit_compile=name == XLA)
        iterator = iter(_dataset(config, folder, cache=name == CACHED))

        def step():
            return train_step(*next(iterator))

    def run(steps):
        for _ in range(steps):
            logs = step()
        return float(logs["gen_l1"])  # waits for the last step to finish

    return run


def training_difference(config: Config, folder, steps: int = 5, gan_update: str = "sequential") -> dict[str, float]:
    """How far p2p's training with `gan_update` ends from its reference step's (`p2p.lab.reference`), on the same batches.

    Both models are `config`'s, in float32 and without XLA, with p2p's default optimizer (Keras' Adam).
    """
    p2p_model = _model(config, gan_update=gan_update)
    reference_model = _model(config)
    return reference.training_difference(p2p_model, reference_model, _dataset(config, folder, cache=True), steps)


CONVOLUTIONS = ("Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter", "FusedConv2D", "Conv2DBackpropFilterWithBias")


def profile_step(config: Config, folder, variant: str, steps: int) -> dict:
    """Where a train step's time goes, from a TensorFlow profiler trace of `steps` steps (appendix "Scaling up").

    Returns the wall time per step, the time the inter-op threads were busy running the step's
    operations, and that busy time per operation type (oneDNN's `_MklNative` prefix dropped), in
    milliseconds per step. An operation's time includes the intra-op threads it waits for.
    """
    from tensorflow.tsl.profiler.protobuf import xplane_pb2  # TensorFlow's own trace format

    run = _runner(variant, config, folder)
    run(3)  # warm-up
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        start = time.perf_counter()
        run(steps)
        wall = time.perf_counter() - start
        tf.profiler.experimental.stop()
        space = xplane_pb2.XSpace()
        space.ParseFromString(next(pathlib.Path(logdir).rglob("*.xplane.pb")).read_bytes())
    busy, by_type = 0.0, {}
    host = next(plane for plane in space.planes if plane.name == "/host:CPU")
    for line in host.lines:
        if not line.name.startswith("tf_Compute"):  # the inter-op threads that run the step's graph
            continue
        for event in line.events:
            name = host.event_metadata[event.metadata_id].name  # "op name:op type", or an executor's own event
            seconds = event.duration_ps / 1e12
            if name == "Process" or name.endswith(":Process"):  # the executor's run of a whole graph
                busy += seconds
            elif ":" in name:
                kind = name.rsplit(":", 1)[1].removeprefix("_MklNative").removeprefix("_Mkl")
                by_type[kind] = by_type.get(kind, 0.0) + seconds
    per_step = 1000 / steps
    return {"wall_ms": wall * per_step, "busy_ms": busy * per_step,
            "ops_ms": {kind: t * per_step for kind, t in sorted(by_type.items(), key=lambda item: -item[1])}}


def format_profile(profile: dict, variant: str) -> str:
    """One profiled step in a line: wall time, shares of convolutions and of the fused Adam kernel, the costliest operations.

    Keras' own Adam (p2p's default, and the tutorial's) is a dozen element-wise operations, counted in
    "the rest"; the fused share is FusedAdam's kernel (the variants "+ fused Adam" and "p2p + fused Adam").
    """
    ops = profile["ops_ms"]
    total = sum(ops.values())
    convolutions = sum(t for kind, t in ops.items() if kind in CONVOLUTIONS)
    adam = ops.get("ResourceApplyAdam", 0.0)
    top = ", ".join(f"{kind} {t:.0f}" for kind, t in list(ops.items())[:4])
    return (f"{variant}: {profile['wall_ms']:.0f} ms/step; operations {total:.0f} ms of thread time: "
            f"convolutions {100 * convolutions / total:.0f}%, fused Adam {100 * adam / total:.0f}%, "
            f"the rest {100 * (total - convolutions - adam) / total:.0f}% | {top} ms")


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


def inference_rate(config: Config, folder, repeats: int, seconds: float) -> list[float]:
    """Images per second of `p2p.inference.translate` (one image, dropout on, its own BatchNorm statistics), for each repeat."""
    generator = _model(config, jit_compile="auto").generator
    inputs, _ = data.example_batch(data.split_folder(folder, "test"), 1, image_size=config.image_size)

    def run(images):
        for _ in range(images):
            outputs = translate(generator, inputs)
        return outputs.numpy()

    return time_interleaved({"inference": run}, repeats, seconds)["inference"]


def pipeline_rates(config: Config, folder, repeats: int, seconds: float) -> dict[str, list[float]]:
    """Images per second that the input pipeline delivers alone, cached (p2p) and uncached (the tutorial's)."""
    iterators = {kind: iter(_dataset(config, folder, cache=kind == "cached")) for kind in ("cached", "uncached")}
    runs = {kind: (lambda n, it=it: [next(it) for _ in range(n)]) for kind, it in iterators.items()}
    return {kind: [r * config.batch_size for r in rates] for kind, rates in time_interleaved(runs, repeats, seconds).items()}


def bench_config(name, folder, variants, repeats, seconds, extras=True) -> dict:
    """All measurements of one preset: train rates of the variants, FLOPs, and (with extras) inference and pipeline rates."""
    config = get_preset(name)
    rates = time_interleaved({v: _runner(v, config, folder) for v in variants}, repeats, seconds)
    result = {
        "image_size": config.image_size, "ngf": config.ngf, "ndf": config.ndf, "n_layers": config.n_layers,
        "batch_size": config.batch_size,
        "train_steps_per_second": {v: {"median": statistics.median(r), "repeats": r} for v, r in rates.items()},
    }
    if extras:
        model = _model(config)
        inputs, targets = next(iter(_dataset(config, folder, cache=True)))
        result["conv_flops_per_step"] = {
            "paper": conv_flops(reference.paper_step(model), inputs, targets),
            "tutorial": conv_flops(reference.tutorial_step(model), inputs, targets),
        }
        result["inference_images_per_second"] = statistics.median(inference_rate(config, folder, repeats, seconds))
        result["pipeline_images_per_second"] = {
            kind: statistics.median(r) for kind, r in pipeline_rates(config, folder, repeats, seconds).items()
        }
    return result


def bench_threads(name, folder, repeats, seconds) -> dict[str, dict]:
    """p2p's train rates (both update orders) with other thread-pool sizes, each in a child process (appendix "Scaling up").

    The pool sizes are fixed when TensorFlow starts, hence a process for each.
    """
    results = {}
    for inter, intra in THREADS:
        with tempfile.NamedTemporaryFile(suffix=".json") as report:
            subprocess.run(
                [sys.executable, "-m", "p2p", "bench", "--configs", name, "--variants", P2P, P2P_SIMULTANEOUS,
                 "--no-extras", "--threads", str(inter), str(intra), "--data", str(folder), "--repeats", str(repeats),
                 "--seconds", str(seconds), "--json", report.name, "--quiet"],
                check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
            )
            with open(report.name) as file:
                child = json.load(file)["configs"][name]["train_steps_per_second"]
        for variant, rate in child.items():
            results[f"{variant}, threads {inter}/{intra}"] = rate
    return results


def fastest_thread_pools(config: dict, margin: float = 1.05) -> tuple[int, int]:
    """The (inter-op, intra-op) sizes under which p2p trained fastest, (0, 0) for TensorFlow's default.

    Another size wins only when its median beats the default's by `margin`, more than the
    repeats of one setting spread on this machine.
    """
    default = config["train_steps_per_second"][P2P]["median"]
    best, best_rate = (0, 0), default * margin
    for inter, intra in THREADS:
        rate = config.get("threads", {}).get(f"{P2P}, threads {inter}/{intra}", {}).get("median", 0.0)
        if rate > best_rate:
            best, best_rate = (inter, intra), rate
    return best


def _flops(config: dict, variant: str) -> int | None:
    """The convolution FLOPs of one step of `variant` (a thread-pool row counts as its variant)."""
    flops = config.get("conv_flops_per_step")
    if not flops:
        return None
    return flops["tutorial" if variant.split(", threads")[0] in ONE_D_PASS_FEWER else "paper"]


def format_table(results: dict) -> str:
    """The benchmark as a text table: one row per configuration and variant, then the other rates."""
    peak = results["matmul_gflops"]
    lines = [f"matmul: {peak:.0f} GFLOP/s (float32, 2048 x 2048)" if peak else "", ""]
    lines.append(f"{'config':7} {'variant':42} {'steps/s':>8} {'x tutor.':>8} {'GFLOP/s':>8} {'% matmul':>9}  repeats")
    for name, config in results["configs"].items():
        rows = {**config["train_steps_per_second"], **config.get("threads", {})}
        baseline = rows.get(TUTORIAL, {}).get("median")
        for variant, rate in rows.items():
            ratio = f"{rate['median'] / baseline:8.2f}" if baseline else f"{'':8}"
            flops = _flops(config, variant)
            gflops = rate["median"] * flops / 1e9 if flops else None
            achieved = f"{gflops:8.1f} {100 * gflops / peak:8.0f}%" if gflops and peak else f"{'':8} {'':9}"
            lines.append(f"{name:7} {variant:42} {rate['median']:8.3f} {ratio} {achieved}  "
                         + " ".join(f"{r:.3f}" for r in rate["repeats"]))
    lines.append("")
    for name, config in results["configs"].items():
        if "threads" in config:
            inter, intra = fastest_thread_pools(config)
            chosen = f"inter-op {inter}, intra-op {intra}" if inter or intra else "TensorFlow's default"
            lines.append(f"{name:7} fastest thread pools for p2p: {chosen} (now the default of `p2p train` here)")
    for name, config in results["configs"].items():
        rates = config["train_steps_per_second"]
        if P2P in rates and P2P_FUSED in rates:
            lines.append(f"{name:7} p2p's default, Keras' Adam: {rates[P2P]['median'] / rates[P2P_FUSED]['median']:.2f}x "
                         f"the steps/s of the same step with FusedAdam ({P2P_FUSED!r})")
    for name, config in results["configs"].items():
        if "pipeline_images_per_second" not in config:
            continue
        pipeline = config["pipeline_images_per_second"]
        trained = config["train_steps_per_second"].get(P2P, {}).get("median", float("nan")) * config["batch_size"]
        flops = config["conv_flops_per_step"]
        lines.append(
            f"{name:7} step {flops['paper'] / 1e9:.1f} GFLOP (convolutions; {flops['tutorial'] / 1e9:.1f} with one D pass "
            f"fewer) | inference {config['inference_images_per_second']:.1f} images/s | pipeline "
            f"{pipeline['cached']:.0f} images/s cached, {pipeline['uncached']:.0f} uncached = "
            f"{pipeline['cached'] / trained:.0f}x p2p's training rate"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    """Run the benchmark, print its table and optionally write the results as JSON."""
    parser = argparse.ArgumentParser(prog="python -m p2p bench", description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["paper", "cpu"], choices=list(PRESETS))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds per variant (interleaved)")
    parser.add_argument("--seconds", type=float, default=4.0, help="about how long each timed round lasts")
    parser.add_argument("--threads", type=int, nargs=2, metavar=("INTER", "INTRA"),
                        help="TensorFlow's inter-op and intra-op pool sizes (default: its own choice)")
    parser.add_argument("--no-threads", dest="child_threads", action="store_false",
                        help="skip the child processes that try other thread-pool sizes")
    parser.add_argument("--profile", type=int, metavar="STEPS",
                        help="instead of timing: profile STEPS steps of each variant and show where the time goes")
    parser.add_argument("--no-extras", dest="extras", action="store_false",
                        help="train rates only: no FLOP count, inference or pipeline rates")
    parser.add_argument("--data", help="a facades folder at the preset's size (default: made in a temporary folder)")
    parser.add_argument("--json", help="write the results to this file")
    parser.add_argument("--quiet", action="store_true", help="print nothing (for child processes)")
    args = parser.parse_args(argv)
    if args.threads:
        devices.set_thread_pools(*args.threads)

    results = records.provenance(
        command=shlex.join(["python", "-m", "p2p", "bench", *(argv if argv is not None else sys.argv[1:])]),
        accelerator=devices.accelerator() or "CPU",
        threads=args.threads or "default",
        matmul_gflops=matmul_gflops(repeats=args.repeats) if args.extras and not args.profile else None,
        configs={},
    )
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.configs:
            folder = args.data or make_facades(
                os.path.join(scratch, name), size=get_preset(name).image_size, progress=False
            )
            if args.profile:
                results["configs"][name] = {v: profile_step(get_preset(name), folder, v, args.profile) for v in args.variants}
                continue
            config = bench_config(name, folder, args.variants, args.repeats, args.seconds, args.extras)
            if args.child_threads and not args.threads:
                config["threads"] = bench_threads(name, folder, args.repeats, args.seconds)
                threads.record_thread_pools(name, fastest_thread_pools(config))  # the default of `p2p train` here
            results["configs"][name] = config
            if not args.quiet:
                print(f"{name}: done", file=sys.stderr, flush=True)
    if args.json:
        files.write_json(args.json, results)
    if args.quiet:
        return 0
    if args.profile:
        for name, profiles in results["configs"].items():
            print("\n".join(f"{name:7} {format_profile(profile, variant)}" for variant, profile in profiles.items()))
    else:
        print(format_table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
