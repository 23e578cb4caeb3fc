"""The epochs of a training run, phase by phase (kerapipe/training/fine_tuning.py): each phase
is one ``fit`` from the epoch the last one reached, with the same callbacks (one DVCLive curve,
one CSV log, one checkpoint folder). Before an unfrozen phase the base is unfrozen and the
model compiled again at the scaled learning rate; a frozen phase trains the head alone on the
base's cached features where they apply (kerapipe/training/frozen_features.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

import keras

from kerapipe.config import ModelParams, TrainingParams
from kerapipe.distribution import Distribution
from kerapipe.models.base import ModelBuilder
from kerapipe.tasks.base import Task
from kerapipe.training import fine_tuning
from kerapipe.training.checkpoints import Checkpoints
from kerapipe.training.fit import FitData, fit
from kerapipe.training.frozen_features import (
    cache_features,
    features_kind,
    split_at_features,
)
from kerapipe.training.inputs import TrainingInputs
from kerapipe.training.model import compile_model, unfreeze_and_compile

log = logging.getLogger(__name__)


@dataclass
class Phases:
    """Everything the phases of one run share."""

    task: Task
    builder: ModelBuilder
    model_settings: ModelParams  # the params' MODEL group
    training: TrainingParams
    inputs: TrainingInputs
    checkpoints: Checkpoints
    dist: Distribution
    history: dict[str, list[float]] = field(default_factory=dict)

    def plan(self, initial_epoch: int) -> list[fine_tuning.Phase]:
        """The phases left after ``initial_epoch`` epochs."""
        frozen = bool(getattr(self.builder.params, "FREEZE_BASE", False))
        every = fine_tuning.phases(self.training.FINE_TUNING, self.training.NUM_EPOCHS, frozen)
        return fine_tuning.remaining(every, initial_epoch)

    def run(
        self, model: keras.Model, initial_epoch: int, callbacks: list, steps: int
    ) -> dict[str, list[float]]:
        """Fit every phase left; the history of every epoch run."""
        for phase in self.plan(initial_epoch):
            if not phase.frozen and fine_tuning.is_frozen(model):
                self.unfreeze(model)
            trained, data = self.frozen_inputs(model) if phase.frozen else (None, None)
            trained, data = trained or model, data or self.inputs.fit
            self.checkpoints.track(model if trained is not model else None)
            try:
                result = fit(trained, data, phase.end, phase.start, callbacks, steps)
            finally:
                self.checkpoints.track(None)
            for name, values in result.history.items():
                self.history.setdefault(name, []).extend(values)
            if trained.stop_training:  # EarlyStopping ends the run, whatever the phase
                break
        return self.history

    def unfreeze(self, model: keras.Model) -> None:
        """Unfreeze the base as ``FINE_TUNING.UNFREEZE`` says and compile the model again at
        the learning rate times ``LEARNING_RATE_FACTOR``."""
        schedule = self.training.FINE_TUNING
        with self.dist.scope():
            unfreeze_and_compile(model, schedule, self.task.head, self.model_settings)
        self.checkpoints.model_changed()
        log.info(
            "Unfroze %s of the base; learning rate x %g from here on.",
            "all" if schedule.UNFREEZE == "all" else f"the top {schedule.UNFREEZE} layers",
            schedule.LEARNING_RATE_FACTOR,
        )

    def frozen_inputs(self, model: keras.Model) -> tuple[keras.Model | None, FitData | None]:
        """``(head, its data)``: the head alone, on the frozen base's cached features, where
        they apply (a cache, no augmentation, one process and device); else ``(None, None)``:
        the whole model on the images."""
        inputs, training = self.inputs, self.training
        store = inputs.fit.cache
        applies = store is not None and not training.AUGMENTATIONS and self.dist.replicas == 1
        split = split_at_features(model) if applies and not self.dist.multi_process else None
        if split is None:
            return None, None
        extractor, head = split
        rows = inputs.local_rows
        kind = features_kind(self.builder.name, extractor)
        cached = cache_features(
            extractor, self.task, rows, inputs.options, store, kind, inputs.batch_size
        )
        if cached is None:
            return None, None
        compile_model(head, self.task.head, self.model_settings, model.optimizer)
        return head, self.features_data(cached)

    def features_data(self, cached) -> FitData:
        """The datasets of ``fit`` with each image's cached features in place of it, held in
        memory after the first epoch when they fit (they are small beside images)."""
        inputs = self.inputs
        options = replace(inputs.options, features=cached, cache="memory")
        dataset = self.task.data.dataset
        train = dataset(inputs.local_train, inputs.batch_size, inputs.seed, options)
        validation = None
        if inputs.fit.validation is not None:
            validation = dataset(
                inputs.local_validation, inputs.batch_size, None, options.for_evaluation()
            )
        return replace(inputs.fit, train=train, validation=validation)
