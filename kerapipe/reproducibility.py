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


def set_precision(mixed: bool) -> None:
    """Mixed precision: float16 on a GPU, bfloat16 on a CPU; float32 otherwise.

    Heads keep float32 outputs, and Keras adds loss scaling for float16 by itself.
    """
    import keras
    import tensorflow as tf

    if not mixed:
        keras.mixed_precision.set_global_policy("float32")
    elif tf.config.list_physical_devices("GPU"):
        keras.mixed_precision.set_global_policy("mixed_float16")
    else:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")


def distribution_strategy(name: str):
    """``none``: the default strategy (one device). ``mirrored``: data-parallel over every
    GPU, or over the logical CPU devices when there is no GPU."""
    import tensorflow as tf

    if name == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    return tf.distribute.get_strategy()


def environment_info() -> dict[str, object]:
    """Versions and devices to record beside a run's outputs."""
    import tensorflow as tf

    versions = {}
    for package in ("kerapipe", "keras", "tensorflow", "tensorflow-cpu", "numpy", "dvc", "dvclive"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    import keras

    return {
        "precision_policy": keras.mixed_precision.global_policy().name,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": versions,
        "devices": [device.name for device in tf.config.list_logical_devices()],
    }
