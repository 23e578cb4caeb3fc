"""Ctrl-C during ``fit`` always stops it (kerapipe/training/interrupts.py), even when the
signal lands in a finalizer, where Python's own KeyboardInterrupt is printed and lost."""

from __future__ import annotations

import gc
import os
import signal
import sys

import keras
import numpy as np
import pytest

from kerapipe.training.interrupts import StopOnInterrupt


@pytest.fixture
def lost(monkeypatch) -> list:
    """The exceptions Python prints as "Exception ignored" (a finalizer's) during the test."""
    raised: list = []
    monkeypatch.setattr(sys, "unraisablehook", lambda info: raised.append(info.exc_type))
    return raised


@pytest.fixture
def pythons_own_handler():
    """SIGINT handled as in a plain ``python`` process (a pytest-xdist worker ignores it)."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


class SignalInAFinalizer:
    """Sends SIGINT to this process from its ``__del__``, as when Ctrl-C arrives while
    TensorFlow frees a tensor: Python runs the handler there, inside the finalizer."""

    def __del__(self) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        sum(range(1000))  # a few bytecodes, for the handler to run in


class CtrlCAtBatch(keras.callbacks.Callback):
    def __init__(self, batch: int) -> None:
        super().__init__()
        self.batch, self.seen = batch, []

    def on_train_batch_end(self, batch, logs=None) -> None:
        self.seen.append(batch)
        if batch == self.batch:
            SignalInAFinalizer()  # freed at once
            gc.collect()


def fit(callbacks: list, stop: StopOnInterrupt | None):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse", steps_per_execution=1)
    x, y = np.zeros((40, 2), "float32"), np.zeros((40, 1), "float32")
    if stop is None:
        return model.fit(x, y, batch_size=4, epochs=3, callbacks=callbacks, verbose=0)
    with stop.noting_interrupts():
        return model.fit(x, y, batch_size=4, epochs=3, callbacks=[*callbacks, stop], verbose=0)


def test_without_it_the_interrupt_in_a_finalizer_is_lost(pythons_own_handler, lost):
    """What kerapipe guards against: Python's handler raises inside ``__del__``, where the
    exception is only printed, and every epoch runs."""
    ctrl_c = CtrlCAtBatch(batch=2)
    fit([ctrl_c], stop=None)
    assert len(ctrl_c.seen) == 30
    assert lost == [KeyboardInterrupt] * 3  # a Ctrl-C an epoch, each lost


def test_the_interrupt_stops_fit_at_the_next_batch_end(pythons_own_handler, lost):
    ctrl_c, stop = CtrlCAtBatch(batch=2), StopOnInterrupt()
    with pytest.raises(KeyboardInterrupt):
        fit([ctrl_c], stop)
    assert ctrl_c.seen == [0, 1, 2]  # the callbacks before it saw the batch
    assert lost == []
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # Python's again


def test_a_second_ctrl_c_raises_at_once(pythons_own_handler):
    stop = StopOnInterrupt()
    with pytest.raises(KeyboardInterrupt), stop.noting_interrupts():
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.interrupted  # noted, not raised
        os.kill(os.getpid(), signal.SIGINT)
        sum(range(1000))
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_programs_own_handler_is_left_in_place():
    def own(signum, frame):
        pass

    before = signal.signal(signal.SIGINT, own)
    try:
        with StopOnInterrupt().noting_interrupts():
            assert signal.getsignal(signal.SIGINT) is own
    finally:
        signal.signal(signal.SIGINT, before)
