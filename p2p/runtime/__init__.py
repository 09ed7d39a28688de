"""The machinery under the reading path: what keeps runs safe and places them on devices, not the paper's ideas.

devices: precision, XLA, tf.distribute (appendix "Scaling up"). For the README "What it promises":
files (written whole), guards (the run folder refused, locked; a full disk), resume (damaged checkpoints, a
metrics.csv cut short), stopping (a NaN loss, Ctrl-C, SIGTERM), progress (the bar) and filecheck (data files
that cannot be read). The core calls these; they import neither it nor p2p.lab, and importing this is free of
TensorFlow.
"""
