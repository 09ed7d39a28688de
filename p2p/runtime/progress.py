"""The progress bar of a run (chapter "Running a run")."""

from __future__ import annotations

import keras
from tqdm.auto import tqdm


class ProgressBar(keras.callbacks.Callback):
    """One tqdm bar over the whole run (not per `fit` epoch), with the latest losses."""

    def __init__(self, total: int, initial: int):
        super().__init__()
        self.total, self.initial = total, initial

    def on_train_begin(self, logs=None):
        self.bar = tqdm(total=self.total, initial=self.initial, desc="train",
                        unit="step")

    def on_train_batch_end(self, batch, logs=None):
        self.bar.update(1)
        if batch % 10 == 0:
            self.bar.set_postfix({k: f"{float(v):.3f}" for k, v in logs.items()},
                                 refresh=False)

    def on_train_end(self, logs=None):
        self.bar.close()
