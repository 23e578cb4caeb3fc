"""Seeds and the facts that make a run reproducible (package versions, device)."""

from __future__ import annotations

import platform
import sys
from importlib import metadata


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy, TensorFlow and Keras (JAX draws from Keras' seed), and make
    TensorFlow ops (tf.data's, on either backend) deterministic."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def set_precision(mixed: bool) -> None:
    """Mixed precision: float16 on a GPU, bfloat16 on a CPU; float32 otherwise (either
    backend).

    Heads keep float32 outputs, and Keras adds loss scaling for float16 by itself.
    """
    import keras

    from kerapipe.backend import has_gpu

    if not mixed:
        keras.mixed_precision.set_global_policy("float32")
    elif has_gpu():
        keras.mixed_precision.set_global_policy("mixed_float16")
    else:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")


def environment_info() -> dict[str, object]:
    """The backend, versions and devices to record beside a run's outputs."""
    from kerapipe.backend import current, device_names

    versions = {}
    packages = ("kerapipe", "keras", "tensorflow", "tensorflow-cpu", "jax", "jaxlib", "numpy",
                "dvc", "dvclive")  # fmt: skip
    for package in packages:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    import keras

    return {
        "backend": current(),
        "precision_policy": keras.mixed_precision.global_policy().name,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": versions,
        "devices": device_names(),
    }
