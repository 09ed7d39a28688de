"""Machinery, not the paper's ideas: what keeps runs safe and places them on devices.

It lies under the reading path. devices: precision, XLA, tf.distribute, and `minimize`,
the optimizer step every train step calls (appendix "Scaling up"). For the README "What
it promises": files (written whole), guards (the run folder refused, locked; a full
disk), resume (damaged checkpoints, a metrics.csv cut short), stopping (a NaN loss,
Ctrl-C, SIGTERM), progress (the bar) and arguments (the command line's options, each
error one line). The core calls these; they import neither it nor p2p.lab.
"""
