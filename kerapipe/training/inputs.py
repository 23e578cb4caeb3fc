"""What a training run reads: the inventory's training and validation rows, their files made
local (a remote source's are fetched into the remote cache first, so every epoch reads local
disk), and the datasets built from them by the task."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

import pandas as pd

from kerapipe.config import TrainingParams
from kerapipe.datasets import DatasetOptions
from kerapipe.distribution import Distribution
from kerapipe.errors import DataError
from kerapipe.images import first
from kerapipe.sources import DataSource
from kerapipe.tasks.base import Task
from kerapipe.training.fit import FitData


@dataclass(frozen=True)
class TrainingInputs:
    """The rows of each split (their files as the source names them, and local), the
    datasets' options and batch size, and what ``fit`` reads."""

    train_rows: pd.DataFrame
    validation_rows: pd.DataFrame
    local_rows: pd.DataFrame
    options: DatasetOptions
    batch_size: int
    seed: int
    fit: FitData

    @property
    def local_train(self) -> pd.DataFrame:
        return self.local_rows[self.local_rows.split == "train"]

    @property
    def local_validation(self) -> pd.DataFrame:
        return self.local_rows[self.local_rows.split == "validation"]


def training_inputs(
    task: Task,
    table: pd.DataFrame,
    source: DataSource,
    training: TrainingParams,
    remote_cache_dir: str | None,
    seed: int,
    dist: Distribution,
) -> TrainingInputs:
    """The datasets of the inventory ``table`` (its images on ``source``), seeded with
    ``seed``, each process reading its slice under ``dist``; ``BATCH_SIZE`` is per replica,
    so the global batch grows with the number of devices."""
    train_rows, validation_rows = (table[table.split == s] for s in ("train", "validation"))
    if train_rows.empty:
        raise DataError("the inventory has no 'train' rows. Rerun `kerapipe inventory`.")
    task.data.prepare(train_rows)
    local_rows = local_files(task.layout.file_columns, table, source)
    named = {  # each file read (images, masks) to its path on its source: for messages
        local: remote
        for column in task.layout.file_columns
        for local, remote in zip(local_rows[column], table[column], strict=True)
    }
    local_train, local_validation = (local_rows[table.split == s] for s in ("train", "validation"))
    batch_size = training.BATCH_SIZE * dist.replicas
    options = replace(DatasetOptions.from_params(training, remote_cache_dir), shard=dist.shard())
    train = task.data.dataset(local_train, batch_size, shuffle_seed=seed, options=options)
    validation = None
    if len(validation_rows):
        evaluation = options.for_evaluation()
        validation = task.data.dataset(local_validation, batch_size, None, options=evaluation)
    class_weight = task.data.class_weights(training.CLASS_WEIGHT, train_rows)
    fit = FitData(train, validation, named, class_weight, options.store())
    return TrainingInputs(train_rows, validation_rows, local_rows, options, batch_size, seed, fit)


def evaluation_data(task: Task, inputs: TrainingInputs, per_replica_batch: int):
    """Every validation image, on this process alone (under ``data_parallel`` the
    validation dataset holds only this process's slice)."""
    if inputs.options.shard is None:
        return inputs.fit.validation
    options = replace(inputs.options.for_evaluation(), shard=None)
    return task.data.dataset(inputs.local_validation, per_replica_batch, None, options=options)


def local_files(columns: tuple[str, ...], table: pd.DataFrame, source: DataSource) -> pd.DataFrame:
    """``table`` with its file ``columns`` turned into local paths: fetched into the remote
    cache for a remote source, as they are for the local one. A file the inventory lists
    but the source no longer holds is an error naming it."""
    if source.is_local:
        return table
    table = table.copy()
    missing: list[str] = []
    for column in columns:
        remote = list(table[column])
        local = source.local_paths(remote)
        missing += [r for r, path in zip(remote, local, strict=True) if not os.path.isfile(path)]
        table[column] = local
    if missing:
        raise DataError(
            f"{len(missing)} file(s) of the inventory are no longer on "
            f"{source.key or source.name}: {first(missing)}. Rerun the inventory "
            "(`kerapipe inventory` with INVENTORY.FORCE: true, or `dvc repro`)."
        )
    return table
