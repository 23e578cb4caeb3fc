"""The model a training run starts from: built from the model registry with the task's head,
given its initial weights, and compiled with the loss, optimizer and metrics the params name;
or a checkpoint's weights and optimizer state, loaded into the model built so."""

from __future__ import annotations

from pathlib import Path

import keras

from kerapipe.components import build_loss, build_metrics, build_optimizer
from kerapipe.config import FineTuningParams, ModelParams
from kerapipe.errors import ModelError
from kerapipe.models.base import ModelBuilder
from kerapipe.tasks.base import TaskHead


def new_model(
    builder: ModelBuilder, head: TaskHead, settings: ModelParams, frozen_base: bool = False
) -> keras.Model:
    """Build the registered model with the task's head, load ``INITIAL_WEIGHTS``, freeze its
    base (``frozen_base``: fine-tuning starts frozen), and compile it with the components of
    ``settings`` (the params' ``MODEL`` group)."""
    model = builder.build(head.output_head())
    initial = builder.weights_file("MODEL.MODEL_PARAMS.INITIAL_WEIGHTS")
    load_initial_weights(model, initial.path if initial else None)
    if frozen_base:
        from kerapipe.training.fine_tuning import freeze

        freeze(model)
    compile_model(model, head, settings)
    return model


def compile_model(
    model: keras.Model, head: TaskHead, settings: ModelParams, optimizer=None
) -> None:
    """Compile ``model`` with the loss and metrics of ``settings`` (or the task's) and
    ``optimizer`` (by default the one ``settings`` names)."""
    model.compile(
        optimizer=optimizer or build_optimizer(settings),
        loss=build_loss(settings, head),
        metrics=build_metrics(settings, head),
    )


def unfreeze_and_compile(
    model: keras.Model, schedule: FineTuningParams, head: TaskHead, settings: ModelParams
) -> None:
    """Unfreeze the base as ``schedule.UNFREEZE`` says and compile ``model`` again at the
    learning rate times ``schedule.LEARNING_RATE_FACTOR``."""
    from kerapipe.training import fine_tuning

    fine_tuning.unfreeze(model, schedule.UNFREEZE)
    optimizer = build_optimizer(settings, schedule.LEARNING_RATE_FACTOR)
    compile_model(model, head, settings, optimizer)


def load_checkpoint(path: Path, model: keras.Model) -> keras.Model:
    """``model``, built from the params as the phase that wrote the checkpoint ``path`` left
    it (its trainable layers, its optimizer), with the checkpoint's weights and optimizer
    state loaded into it. Keras' ``load_model`` would rebuild the model from the file's
    config instead, which for a keras-hub backbone does not say which layers were frozen,
    and then skip the optimizer state, whose variables no longer match."""
    model.optimizer.build(model.trainable_variables)
    model.load_weights(path)
    return model


def load_initial_weights(model: keras.Model, path: str | None) -> None:
    """Start from a previous ``.keras`` model or ``.weights.h5`` file (safe mode, no pickle)."""
    if not path:
        return
    try:
        if path.endswith(".keras"):
            source = keras.saving.load_model(path, compile=False, safe_mode=True)
            copy_weights(source, model)
        else:
            model.load_weights(path)
    except (ValueError, OSError) as err:
        raise ModelError(
            f"MODEL.MODEL_PARAMS.INITIAL_WEIGHTS: {path!r} does not match the model "
            f"{model.name!r}: {err}"
        ) from None


def copy_weights(source: keras.Model, target: keras.Model) -> None:
    """Copy weights variable by variable; name the first one whose shape differs."""
    if len(source.weights) != len(target.weights):
        raise ValueError(
            f"it holds {len(source.weights)} weight tensors, the model has {len(target.weights)}"
        )
    for theirs, ours in zip(source.weights, target.weights, strict=True):
        if tuple(theirs.shape) != tuple(ours.shape):
            raise ValueError(
                f"weight {theirs.path} has shape {tuple(theirs.shape)}, but {ours.path} "
                f"in the model has {tuple(ours.shape)}"
            )
    target.set_weights(source.get_weights())
