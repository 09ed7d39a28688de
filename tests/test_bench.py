"""The benchmark: p2p trains exactly as the reference steps do, FLOPs are counted right, the command runs."""

import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from p2p import bench, presets, reference


@pytest.mark.parametrize("gan_update", ["sequential", "simultaneous"])
def test_each_update_order_trains_as_its_reference_step(facades_root, gan_update):
    # sequential = the paper's step in PyTorch's order, simultaneous = the TensorFlow tutorial's step
    difference = bench.training_difference(presets.get("tiny"), facades_root, steps=5, gan_update=gan_update)
    assert difference["losses"] < 1e-4 and difference["updates"] < 1e-2, difference


def test_the_two_update_orders_train_differently(facades_root):
    # the test above would pass for both orders if the option changed nothing
    preset = presets.get("tiny")
    generators = []
    for gan_update in ("sequential", "simultaneous"):
        model = bench._model(preset, fused=True, jit_compile=False, gan_update=gan_update)
        step = tf.function(model.train_step)
        for batch in bench._dataset(preset, facades_root, cache=True).take(3):
            step(batch)
        generators.append(np.concatenate([w.numpy().ravel() for w in model.generator.trainable_weights]))
    assert np.abs(generators[0] - generators[1]).max() > 1e-4


def test_conv_flops_counts_a_convolution_and_both_its_gradients():
    kernel = tf.Variable(tf.random.normal((4, 4, 3, 8)))

    @tf.function
    def step(inputs, targets):
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            outputs = tf.nn.conv2d(inputs, kernel, 2, "SAME")  # 8 x 8 x 8 outputs
            loss = tf.reduce_sum((outputs - targets) ** 2)
        return tape.gradient(loss, [inputs, kernel])

    inputs = tf.zeros((1, 16, 16, 3))
    forward = 2 * (8 * 8 * 8) * (4 * 4 * 3)
    assert bench.conv_flops(step, inputs, tf.zeros((1, 8, 8, 8))) == 3 * forward


@pytest.mark.slow  # the whole benchmark command, in a child process
def test_the_benchmark_command_writes_its_table_and_json(tmp_path):
    report = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "-m", "p2p.bench", "--configs", "tiny", "--repeats", "1", "--seconds", "0.2",
         "--no-threads", "--json", str(report)],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(report.read_text())
    config = results["configs"]["tiny"]
    assert set(config["train_steps_per_second"]) == set(bench.VARIANTS)
    assert all(rate["median"] > 0 for rate in config["train_steps_per_second"].values())
    flops = config["conv_flops_per_step"]
    assert flops["paper"] > flops["tutorial"] > 0 and config["inference_images_per_second"] > 0
    assert results["matmul_gflops"] > 0 and config["pipeline_images_per_second"]["cached"] > 0
    for variant in bench.VARIANTS:
        assert f"tiny    {variant}" in result.stdout


def test_another_thread_pool_size_wins_only_by_more_than_the_margin():
    def config(default, two_one):
        return {"train_steps_per_second": {bench.P2P: {"median": default}},
                "threads": {f"{bench.P2P}, threads 2/1": {"median": two_one}, f"{bench.P2P}, threads 1/2": {"median": 1.0}}}

    assert bench.fastest_thread_pools(config(10.0, 10.3)) == (0, 0)  # within the noise: TensorFlow's default stays
    assert bench.fastest_thread_pools(config(10.0, 11.0)) == (2, 1)


def test_the_simultaneous_update_runs_d_once_less(facades_root):
    preset = presets.get("tiny")
    inputs, targets = next(iter(bench._dataset(preset, facades_root, cache=True)))
    flops = {}
    for gan_update in ("sequential", "simultaneous"):
        model = bench._model(preset, fused=True, jit_compile=False, gan_update=gan_update)
        flops[gan_update] = bench.conv_flops(tf.function(lambda x, y, model=model: model.train_step((x, y))), inputs, targets)
    paper_model = bench._model(preset, fused=False, jit_compile=False)
    assert flops["sequential"] == bench.conv_flops(reference.paper_step(paper_model), inputs, targets)
    assert flops["simultaneous"] == bench.conv_flops(reference.tutorial_step(paper_model), inputs, targets)
    assert flops["simultaneous"] < flops["sequential"]


def test_a_profile_finds_the_convolutions_in_the_step(facades_root):
    profile = bench.profile_step(presets.get("tiny"), facades_root, bench.P2P, steps=3)
    assert profile["wall_ms"] > 0 and 0 < sum(profile["ops_ms"].values()) <= 1.05 * profile["busy_ms"]
    assert {"Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter", "ResourceApplyAdam"} <= set(profile["ops_ms"])
    assert "convolutions" in bench.format_profile(profile, bench.P2P)
