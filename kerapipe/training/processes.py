"""The hand-over between the processes of a multi-process run (``DISTRIBUTION:
data_parallel``): process 0's resume shared with every process, and after the fit the trained
model rebuilt on each process alone, for saving and evaluation."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import keras
import numpy as np

from kerapipe.distribution import Distribution
from kerapipe.errors import ModelError
from kerapipe.training.checkpoints import Checkpoints, CheckpointState


def model_state(model: keras.Model) -> list[np.ndarray]:
    """Every weight and optimizer variable of ``model``, as arrays."""
    variables = [*model.weights, *model.optimizer.variables]
    return [np.asarray(keras.ops.convert_to_numpy(v.value)) for v in variables]


def set_model_state(model: keras.Model, arrays: list[np.ndarray]) -> None:
    """Assign what ``model_state`` returned to a model of the same build."""
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    variables = [*model.weights, *model.optimizer.variables]
    if len(variables) != len(arrays):
        raise ModelError(
            f"the model holds {len(variables)} variables, the state to load {len(arrays)}"
        )
    for variable, array in zip(variables, arrays, strict=True):
        variable.assign(array)


def resume_on_every_process(
    dist: Distribution,
    checkpoints: Checkpoints,
    resume: bool,
    build: Callable[[int], keras.Model],
    load: Callable[[Path], keras.Model],
    seed: int,
) -> tuple[CheckpointState | None, keras.Model]:
    """The model on every process of a multi-process run, with process 0's resume (its
    checkpoint state, weights and optimizer state; ``resume``: LOAD_CHECKPOINT): only
    process 0 reads the checkpoints (with ``load``), on its own (a load computes, and a
    computation on the global arrays would wait for the others); every process then builds
    the model alike (``build``, given the epochs done) and takes those values."""
    state, arrays = None, None
    if dist.writer and resume:
        with dist.paused():
            resumed = checkpoints.resume(load)
        if resumed:
            state, arrays = resumed[0], model_state(resumed[1])
    shared = dist.from_writer(asdict(state) if state else None)
    if shared is not None:  # the load drew from process 0's generator: all start alike again
        keras.utils.set_random_seed(seed)
    model = build(shared["epoch"] if shared else 0)
    if shared is None:
        return None, model
    model.optimizer.build(model.trainable_variables)
    if arrays is None:  # the others send arrays of the right shapes, which process 0 replaces
        variables = [*model.weights, *model.optimizer.variables]
        arrays = [np.zeros(v.shape, keras.backend.standardize_dtype(v.dtype)) for v in variables]
    set_model_state(model, dist.from_writer(arrays))
    return CheckpointState(**shared), model


def local_copy(
    dist: Distribution, model: keras.Model, build: Callable[[], keras.Model], seed: int
) -> keras.Model:
    """After a multi-process fit: the trained model, optimizer state included, rebuilt on
    this process alone (``build``; the global arrays cannot be predicted with, and saving
    them needs every process), with the distribution unset. Every process makes it, alike."""
    arrays = model_state(model)
    dist.end()
    keras.utils.set_random_seed(seed)  # a new, local, random generator for the new model
    local = build()
    set_model_state(local, arrays)
    return local
