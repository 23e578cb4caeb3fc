"""Seeds and the facts that make a run reproducible (package versions, device)."""

from __future__ import annotations

import platform
import sys
from importlib import metadata


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy, TensorFlow and Keras, and make TensorFlow ops deterministic."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def environment_info() -> dict[str, object]:
    """Versions and devices to record beside a run's outputs."""
    import tensorflow as tf

    versions = {}
    for package in ("kerapipe", "keras", "tensorflow", "tensorflow-cpu", "numpy", "dvc", "dvclive"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": versions,
        "devices": [device.name for device in tf.config.list_logical_devices()],
    }
