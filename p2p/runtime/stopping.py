"""Stopping cleanly: on a NaN loss, on Ctrl-C or SIGTERM (README "What it promises")."""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import threading
from pathlib import Path

import keras
import tensorflow as tf


class NonFiniteLoss(ArithmeticError):
    """Training stopped because a loss became NaN or infinite."""


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stop with NonFiniteLoss, naming the step, once a loss is NaN or infinite."""

    def __init__(self, run_dir: Path):
        super().__init__()
        self.run_dir = run_dir

    def on_train_batch_end(self, batch, logs=None):
        # Reading the losses waits for the step's end, as Keras' TerminateOnNaN does.
        bad = {name: float(value) for name, value in logs.items()
               if not math.isfinite(float(value))}
        if bad:
            step = int(self.model.gen_optimizer.iterations.numpy())
            latest = tf.train.latest_checkpoint(str(self.run_dir / "checkpoints"))
            kept = (f"its last good checkpoint ({Path(latest).name}) is kept" if latest
                    else "no checkpoint was written")
            raise NonFiniteLoss(
                f"{self.run_dir}: training stopped at step {step}, where the losses "
                f"became {', '.join(f'{k} {v}' for k, v in bad.items())}; {kept}. "
                "Lower the learning rate or the loss weights, or check the data, then "
                "run the same command again to resume from that checkpoint."
            )


@contextlib.contextmanager
def checkpoint_on_interrupt(model, save, steps: int):
    """In the block, Ctrl-C or SIGTERM first calls save(step), if given, and says so.

    A second Ctrl-C or SIGTERM while it saves is ignored: the checkpoint is whole.
    """
    with interrupts_once():
        try:
            yield
        except KeyboardInterrupt:  # Ctrl-C (SIGINT) or SIGTERM
            ignore_interrupts()  # also when the first was raised without a signal
            # keep the steps since the last checkpoint
            step = int(model.gen_optimizer.iterations.numpy())
            if save is not None:
                save(step)
            print(f"interrupted at step {step} of {steps}; saved a checkpoint there: "
                  "run the same command again to resume", file=sys.stderr, flush=True)
            raise


#: The signals that stop a run: Ctrl-C, and what kill, Docker and Colab send.
SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def interrupts_once():
    """In the block, Ctrl-C or SIGTERM raises KeyboardInterrupt once; later ones wait.

    Later ones are ignored until the block ends, so that its handler finishes. A
    Ctrl-C that Python does not handle (ignored, as in a shell's background job) is
    left alone.
    """
    # signal handlers belong to the main thread
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        ignore_interrupts()
        raise KeyboardInterrupt

    previous = {number: signal.getsignal(number) for number in SIGNALS}
    for number in SIGNALS:
        if number == signal.SIGTERM or previous[number] is signal.default_int_handler:
            signal.signal(number, interrupt)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def ignore_interrupts() -> None:
    """Ignore Ctrl-C and SIGTERM (in the main thread) until interrupts_once ends."""
    if threading.current_thread() is threading.main_thread():
        for number in SIGNALS:
            if signal.getsignal(number) is not None:  # None: set outside Python
                # a handler that does nothing, not SIG_IGN: one already on its way
                # would print "ignored due to race condition"
                signal.signal(number, lambda signum, frame: None)
