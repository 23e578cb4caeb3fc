"""Fine-tuning a pretrained base as practitioners do it (``TRAINING.FINE_TUNING``): some epochs
with the base frozen, its BatchNorm layers in inference mode (the base is called with
``training=False``, as Keras' transfer-learning guide prescribes), then the top layers of the
base, or all of them, unfrozen with the learning rate multiplied by a factor. BatchNorm layers
stay as pretrained throughout: their statistics and their scale and offset.

One epoch count (``NUM_EPOCHS``), one DVCLive curve and one checkpoint folder cover both
phases: each phase is one ``fit`` from the epoch the last one reached, and a run killed in
either phase resumes in it (a checkpoint's phase follows from its epoch: ``base_state``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kerapipe.models.base import BASE

if TYPE_CHECKING:
    import keras

    from kerapipe.config import FineTuningParams


@dataclass(frozen=True)
class Phase:
    """Epochs ``start`` (included) to ``end`` (excluded), with the base frozen or not."""

    start: int
    end: int
    frozen: bool


def phases(schedule: FineTuningParams | None, num_epochs: int, frozen: bool) -> list[Phase]:
    """The phases of a run of ``num_epochs``: with ``schedule``, its frozen epochs then the
    rest unfrozen; without, one phase, the base ``frozen`` (``FREEZE_BASE``) or not."""
    if schedule is None:
        return [Phase(0, num_epochs, frozen)]
    cut = min(schedule.FROZEN_EPOCHS, num_epochs)
    found = [Phase(0, cut, True)] if cut else []
    return found + ([Phase(cut, num_epochs, False)] if num_epochs > cut else [])


def base_state(schedule: FineTuningParams | None, epochs_done: int) -> tuple[bool, bool]:
    """``(frozen, unfrozen since)``: whether the schedule starts with the base frozen, and
    whether it has unfrozen it once ``epochs_done`` epochs are done (the phase the checkpoint
    of that epoch was written in)."""
    frozen = schedule is not None and schedule.FROZEN_EPOCHS > 0
    return frozen, frozen and epochs_done > schedule.FROZEN_EPOCHS


def remaining(all_phases: list[Phase], initial_epoch: int) -> list[Phase]:
    """The phases a run resumed after ``initial_epoch`` epochs still has to run, the first
    one starting there."""
    return [
        Phase(max(phase.start, initial_epoch), phase.end, phase.frozen)
        for phase in all_phases
        if phase.end > initial_epoch
    ]


def base_of(model: keras.Model) -> keras.Model | None:
    """The model's pretrained base (the layer named ``base``), or None."""
    try:
        return model.get_layer(BASE)
    except ValueError:
        return None


def is_frozen(model: keras.Model) -> bool:
    base = base_of(model)
    return base is not None and not base.trainable


def freeze(model: keras.Model) -> None:
    """Freeze the whole base (its BatchNorm layers in inference mode too)."""
    base_of(model).trainable = False


def unfreeze(model: keras.Model, layers: int | str) -> None:
    """Unfreeze the top ``layers`` layers of the base (``all``: every one), BatchNorm
    layers apart: they stay as pretrained."""
    from keras import layers as keras_layers

    base = base_of(model)
    base.trainable = True
    children = base.layers
    top = children if layers == "all" else children[max(0, len(children) - int(layers)) :]
    thawed = {id(child) for child in top}
    for child in children:
        if id(child) not in thawed or isinstance(child, keras_layers.BatchNormalization):
            child.trainable = False
