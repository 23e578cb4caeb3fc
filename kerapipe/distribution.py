"""How training spreads over devices and processes (``TRAINING.DISTRIBUTION``).

- ``none``: one device.
- ``mirrored`` (TensorFlow): ``tf.distribute.MirroredStrategy`` over the GPUs (or logical
  CPUs) of this machine.
- ``data_parallel`` (JAX): ``keras.distribution.DataParallel`` over every device of every
  process. The processes join as JAX clusters start them: ``keras.distribution.initialize()``
  reads ``KERAS_DISTRIBUTION_JOB_ADDRESSES``, ``_NUM_PROCESSES`` and ``_PROCESS_ID``, and
  ``jax.distributed`` finds Slurm (``srun``) and Open MPI (``mpirun``) by itself. Each process
  decodes only its slice of every global batch (``Shard``, kerapipe/datasets.py) and feeds
  it to its own devices; process 0 writes the outputs, the others compute beside it
  (kerapipe/steps/train.py).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

# What makes a process one of several: set by the launchers jax.distributed knows, or by hand.
CLUSTER_VARIABLES = ("KERAS_DISTRIBUTION_JOB_ADDRESSES", "KERAS_DISTRIBUTION_NUM_PROCESSES")
# srun sets SLURM_STEP_NUM_TASKS for the tasks it starts (not for an sbatch script itself).
LAUNCHER_SIZES = ("SLURM_STEP_NUM_TASKS", "OMPI_COMM_WORLD_SIZE")
# A command that starts this stage's processes on every host (`srun`, `mpirun -np 4 -H ...`):
# the train stage on the first host runs itself under it (kerapipe/cli.py).
LAUNCHER = "KERAPIPE_LAUNCHER"
LAUNCHED = "KERAPIPE_LAUNCHED"


@dataclass(frozen=True)
class Shard:
    """This process's part of every global batch: slice ``index`` of ``count`` equal ones."""

    index: int
    count: int


@dataclass
class Distribution:
    """The devices and processes one training run computes on."""

    name: str
    replicas: int  # devices over all processes: the global batch is BATCH_SIZE x replicas
    process_index: int = 0
    process_count: int = 1
    strategy: Any = None  # the tf.distribute strategy, on TensorFlow

    @property
    def writer(self) -> bool:
        """Whether this process writes the run's outputs (process 0)."""
        return self.process_index == 0

    @property
    def multi_process(self) -> bool:
        return self.process_count > 1

    def scope(self) -> contextlib.AbstractContextManager:
        """Where the model is built (TensorFlow's strategy scope; JAX's distribution is
        global, set by ``start``)."""
        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()

    def shard(self) -> Shard | None:
        """How this process slices the global batches; None outside ``data_parallel``."""
        if self.name != "data_parallel":
            return None
        return Shard(self.process_index, self.process_count)

    def from_writer(self, value: Any) -> Any:
        """``value`` as process 0 has it, on every process (numbers, strings, lists of
        arrays); itself in a single process."""
        if not self.multi_process:
            return value
        return broadcast(value)

    def wait_for_all(self, hours: float = 12) -> None:
        """Wait until every process gets here (for up to ``hours``): the others wait for
        process 0's saving and evaluation, which can outlast JAX's own shutdown wait."""
        if not self.multi_process:
            return
        from kerapipe.upstream import jax_barrier

        jax_barrier("kerapipe-train-end", int(hours * 3_600_000))

    @contextlib.contextmanager
    def paused(self):
        """Run the block on this process alone (JAX's distribution unset, then set again):
        anything computed on the global arrays would wait for the other processes."""
        if self.name != "data_parallel":
            yield
            return
        import keras

        current = keras.distribution.distribution()
        keras.distribution.set_distribution(None)
        try:
            yield
        finally:
            keras.distribution.set_distribution(current)

    def end(self) -> None:
        """Unset JAX's global distribution (prediction and saving then run on this process
        alone)."""
        if self.name == "data_parallel":
            import keras

            keras.distribution.set_distribution(None)


def start(name: str, backend: str) -> Distribution:
    """Join the processes (``data_parallel`` on several) and set up the distribution. Called
    before anything computes: ``jax.distributed`` must start first."""
    if backend == "tensorflow":
        strategy = _tensorflow_strategy(name)
        return Distribution(name, strategy.num_replicas_in_sync, strategy=strategy)
    if name != "data_parallel":
        return Distribution(name, 1)
    import jax
    import keras

    if cluster_requested():
        keras.distribution.initialize()
    devices = keras.distribution.list_devices()
    keras.distribution.set_distribution(
        keras.distribution.DataParallel(devices=devices, auto_shard_dataset=False)
    )
    return Distribution(name, len(devices), jax.process_index(), jax.process_count())


def launch_command(argv: list[str]) -> list[str] | None:
    """``argv`` (this process's own command) under ``KERAPIPE_LAUNCHER``, when it is set and
    this process is not one it started; else None."""
    import shlex

    launcher = os.environ.get(LAUNCHER, "").strip()
    if not launcher or os.environ.get(LAUNCHED):
        return None
    return [*shlex.split(launcher), *argv]


def cluster_requested() -> bool:
    """Whether this process was started as one of several (``KERAS_DISTRIBUTION_*``, or a
    Slurm or Open MPI launch of more than one task)."""
    if any(os.environ.get(name) for name in CLUSTER_VARIABLES):
        return True
    return any(int(os.environ.get(name, "1") or 1) > 1 for name in LAUNCHER_SIZES)


def _tensorflow_strategy(name: str):
    """``none``: the default strategy (one device). ``mirrored``: data-parallel over every
    GPU, or over the logical CPU devices when there is no GPU."""
    import tensorflow as tf

    if name == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    return tf.distribute.get_strategy()


def broadcast(value: Any) -> Any:
    """Process 0's ``value`` on every process: a JSON-able value, or a list of arrays whose
    shapes every process shares (model weights)."""
    import json

    from jax.experimental import multihost_utils

    if isinstance(value, list) and value and isinstance(value[0], np.ndarray):
        return [np.asarray(a) for a in multihost_utils.broadcast_one_to_all(value)]
    text = np.frombuffer(json.dumps(value).encode(), dtype=np.uint8)
    size = int(multihost_utils.broadcast_one_to_all(np.int32(len(text))))
    padded = np.zeros(size, np.uint8)
    padded[: min(size, len(text))] = text[:size]
    data = np.asarray(multihost_utils.broadcast_one_to_all(padded), dtype=np.uint8)
    return json.loads(data.tobytes().decode())
