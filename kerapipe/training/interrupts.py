"""Ctrl-C during the epochs ends the run, every time, at the next batch or epoch end.

Python raises ``KeyboardInterrupt`` wherever the main thread is when SIGINT arrives. Inside a
finalizer (TensorFlow frees tensors and iterators all the time) it is printed as "Exception
ignored" and lost, and the epochs go on. So while ``fit`` runs, the signal is only noted,
and a callback raises ``KeyboardInterrupt`` from Keras' loop, after the callbacks before it
(the checkpoints) have seen the epoch. A second Ctrl-C raises at once.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

import keras


class StopOnInterrupt(keras.callbacks.Callback):
    """Raises ``KeyboardInterrupt`` at the first batch or epoch end after a Ctrl-C noted by
    ``noting_interrupts``; put it last among the callbacks."""

    def __init__(self) -> None:
        super().__init__()
        self.interrupted = False

    @contextlib.contextmanager
    def noting_interrupts(self) -> Iterator[None]:
        """Within the block, SIGINT is noted instead of raised, where Python's own handler
        is the one in place (a program's own handler, or none, is left as it is)."""
        on_main_thread = threading.current_thread() is threading.main_thread()
        if not on_main_thread or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            yield
            return
        signal.signal(signal.SIGINT, self._note)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        self._stop_if_interrupted()  # noted after the last batch end

    def _note(self, signum: int, frame: Any) -> None:
        if self.interrupted:
            raise KeyboardInterrupt
        self.interrupted = True

    def _stop_if_interrupted(self, *args: Any, **kwargs: Any) -> None:
        if self.interrupted:
            raise KeyboardInterrupt

    on_train_batch_end = on_test_batch_end = on_epoch_end = _stop_if_interrupted
