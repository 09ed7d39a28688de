"""Train a few steps as one worker of a MultiWorkerMirroredStrategy cluster; print a JSON report.

Run by tests/test_distribute.py, one process per worker, each with its own TF_CONFIG and the
same run folder. train() creates the strategy before any other TensorFlow op, as it must.

The digest covers the trainable weights of both networks, which the all-reduced gradients keep
equal on every worker. BatchNorm's moving statistics are left out: each worker updates its own
from its share of the batch (pix2pix never uses them: it normalizes with batch statistics).
"""

import hashlib
import json
import os
import sys

import numpy as np

from p2p import training

data_dir, run_dir = sys.argv[1:3]
model = training.train(data_dir, run_dir, "tiny", steps=6, log_every=3, checkpoint_every=3,
                       strategy="multi-worker", progress=False)
weights = [np.asarray(v.numpy(), np.float32)
           for v in model.generator.trainable_variables + model.discriminator.trainable_variables]
print(json.dumps({
    "task": json.loads(os.environ["TF_CONFIG"])["task"]["index"],
    "steps": int(model.gen_optimizer.iterations.numpy()),
    "replicas": model.distribute_strategy.num_replicas_in_sync,
    "digest": hashlib.sha256(b"".join(w.tobytes() for w in weights)).hexdigest(),
    "checksum": float(sum(w.astype(np.float64).sum() for w in weights)),
}))
