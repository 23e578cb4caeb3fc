"""DVCLive logging of a training run: every epoch as a DVCLive step, named as DVCLive's own
Keras callback names them, continuous across a resume and across the phases of a fine-tuning
schedule (one curve)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent import futures
from typing import Any

import keras
from dvclive import Live
from dvclive.utils import standardize_metric_name

from kerapipe.upstream import LiveInRepositoryOnly, studio_drops_data

DVCLIVE_DIR = "dvclive"


class RunLive(LiveInRepositoryOnly):
    """DVCLive's logger (linked to the DVC repository only where there is one with a commit:
    kerapipe/upstream.py), minus the DVC Studio update it builds at every step when no
    Studio is set up to receive it: DVCLive re-reads every metric file and the params to
    build it, then drops it (work that grows with the epochs); with Studio set up
    (``DVC_STUDIO_TOKEN``, or ``studio`` in DVC's config) it is sent as before."""

    def post_data_to_studio(self) -> None:
        if not studio_drops_data(self):
            super().post_data_to_studio()


class EpochLogger(keras.callbacks.Callback):
    """Logs every epoch to DVCLive, its logger opened in a background thread once the first
    epoch has ended. Opening it imports DVC and opens the repository (for DVC Studio's
    settings): a second of Python that, during the first epoch, would hold up Keras'
    tracing of the training step (Python too); later epochs run in TensorFlow's threads
    beside it. Epochs are logged, in order, as soon as the logger is open; ``opened`` waits
    for it and logs the rest. It is left open at the end of ``fit`` for the evaluation."""

    def __init__(self, open_logger: Callable[[], Live]) -> None:
        super().__init__()
        self.open_logger = open_logger
        self.opening: futures.Future[Live] | None = None
        self.pending: list[dict] = []

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.pending.append(dict(logs or {}))
        if self._start().done():
            self.opened()

    def opened(self) -> Live:
        """The logger, once open, with every epoch ended so far logged."""
        live = self._start().result()
        while self.pending:
            log_epoch(live, self.pending.pop(0))
        return live

    def settle(self) -> None:
        """Wait until an opening under way is done (DVCLive writes in its folder until then)."""
        if self.opening is not None:
            futures.wait([self.opening])

    def _start(self) -> futures.Future[Live]:
        if self.opening is None:
            pool = futures.ThreadPoolExecutor(1, thread_name_prefix="kerapipe-dvclive")
            self.opening = pool.submit(self.open_logger)
            pool.shutdown(wait=False)
        return self.opening


def log_epoch(live: Live, logs: dict) -> None:
    """One epoch's Keras logs as a DVCLive step, named as DVCLive's Keras callback names them."""
    for name, value in logs.items():
        if name != "epoch":
            live.log_metric(standardize_metric_name(name, "dvclive.keras"), float(value))
    live.next_step()


def open_live(
    params: dict[str, Any], past_epochs: list[dict[str, str]], folder: str = DVCLIVE_DIR
) -> Live:
    """A fresh DVCLive run with ``params`` (the params file, and what was resolved from it),
    replaying the epochs a resumed run already did.

    Replaying from the checkpointed CSV log (rather than trusting ``dvclive/``, which DVC
    deletes before a stage runs) keeps the steps continuous and free of duplicates.
    """
    live = RunLive(folder, dvcyaml=None, save_dvc_exp=False, report=None)
    live.log_params(params)
    for row in past_epochs:
        log_epoch(live, row)
    return live
