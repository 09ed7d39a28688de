"""Train a few steps under MirroredStrategy on two logical CPU devices; print a JSON report.

Run by tests/test_distribute.py in its own process: devices must be split before TensorFlow starts.
"""

import json
import sys

import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

from p2p import runs, training  # noqa: E402 (after the device split)

data_dir, run_dir = sys.argv[1:3]
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
model = training.train(data_dir, run_dir, "tiny", steps=6, log_every=3, checkpoint_every=3, strategy=strategy, progress=False)
replica_values = [[v.numpy() for v in var.value.values] for var in model.generator.trainable_variables]
print(json.dumps({
    "replicas": strategy.num_replicas_in_sync,
    "steps": int(model.gen_optimizer.iterations.numpy()),
    "in_sync": all(float(abs(a - b).max()) == 0.0 for a, b in replica_values),
    "metrics": runs.read_metrics(f"{run_dir}/metrics.csv")["gen_l1"].tolist(),
}))
