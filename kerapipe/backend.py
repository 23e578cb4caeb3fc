"""The Keras backend a stage runs on (``TRAINING.BACKEND``: tensorflow or jax), and the few
calls whose form differs between backends: the compiled inference step, the devices, and
loading a ``tf`` SavedModel.

Keras reads its backend once, when it is first imported, from ``KERAS_BACKEND``. The CLI
reads the params first and sets ``KERAS_BACKEND`` from ``TRAINING.BACKEND`` before anything
imports Keras; the params win over an environment variable that says otherwise (a warning
names it). A process that already imported Keras with another backend (a notebook, a test)
gets one error saying how to run it. ``tf.data`` stays the input pipeline on both: under JAX
TensorFlow only reads files, so it is kept off the GPUs, which JAX holds.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kerapipe.errors import ConfigError

if TYPE_CHECKING:  # imported where used: `kerapipe validate` starts without NumPy
    import numpy as np

log = logging.getLogger(__name__)
BACKENDS = ("tensorflow", "jax")


def use_backend(name: str) -> None:
    """Make ``name`` the Keras backend of this process, before Keras is imported; if Keras
    is already imported, check that it runs on ``name``."""
    if "keras" in sys.modules:
        require_backend(name)
        return
    given = os.environ.get("KERAS_BACKEND")
    if given and given != name:
        log.warning(
            "KERAS_BACKEND=%s is set, but TRAINING.BACKEND is %s: the params win (they are what "
            "DVC records). Set TRAINING.BACKEND to choose the backend.",
            given,
            name,
        )
    os.environ["KERAS_BACKEND"] = name
    if name == "jax":
        _keep_tensorflow_off_gpus()


def require_backend(name: str) -> None:
    """One clear error when Keras already runs on another backend than the params say."""
    import keras

    running = keras.backend.backend()
    if running != name:
        raise ConfigError(
            f"TRAINING.BACKEND is {name!r}, but Keras was already imported in this process "
            f"with the {running!r} backend (KERAS_BACKEND is read once, at import). Run the "
            f"stage in a new process (`kerapipe train`, `dvc repro`), or import Keras only "
            f"after setting KERAS_BACKEND={name}."
        )


def current() -> str:
    """The backend Keras runs on."""
    import keras

    return keras.backend.backend()


def _keep_tensorflow_off_gpus() -> None:
    """Under JAX, TensorFlow (tf.data only) must not reserve GPU memory."""
    from kerapipe.native_logs import import_tensorflow

    import_tensorflow()
    import tensorflow as tf

    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:  # TensorFlow already initialised its devices
        log.debug("TensorFlow's devices were already initialised; GPUs stay visible to it.")


def start_tensorflow() -> None:
    """Import TensorFlow for a stage, after ``use_backend``: quietly
    (``kerapipe.native_logs``), without JAX on the tensorflow backend, and with its graph
    optimizer off where it computes on no GPU."""
    from kerapipe.native_logs import import_tensorflow

    if chosen_backend() == "tensorflow" and "jax" not in sys.modules:
        # TensorFlow Lite's `from jax import jit` is optional: an ImportError skips JAX's
        # import (0.5-0.9 s) for the one converter that needs it, which kerapipe never calls.
        sys.modules["jax"] = None  # type: ignore[assignment]
        try:
            import_tensorflow()
        finally:
            del sys.modules["jax"]
    else:
        import_tensorflow()
    graph_optimizer_off_without_gpu()


def chosen_backend() -> str:
    """The backend Keras runs on or will run on (``KERAS_BACKEND``), without importing it."""
    if "keras" in sys.modules:
        return current()
    return os.environ.get("KERAS_BACKEND", "tensorflow")


def graph_optimizer_off_without_gpu() -> None:
    """Turn TensorFlow's graph optimizer (Grappler) off for this process where TensorFlow
    computes on no GPU: a host without one, or any host under JAX (TensorFlow reads files).

    Its rewrites (layouts, fused kernels) serve the GPU; on a CPU they left the steps as
    fast, yet it optimised the input pipeline's map function again for each epoch's new
    iterator (25 ms of 38 on the digits, per dataset) and the model's functions once (see
    docs/performance.md). Call it before TensorFlow's context starts: tf.data reads the
    setting only then."""
    import tensorflow as tf

    if chosen_backend() == "tensorflow" and has_gpu():  # JAX's own check would start it
        return
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})


COMPILATION_CACHE_MAX_BYTES = 2 * 1024**3


def use_compilation_cache(remote_cache_dir: str | None) -> None:
    """On the JAX backend, keep every program XLA compiles in ``jax/`` of kerapipe's cache
    folder (``DATA.REMOTE_CACHE_DIR``, by default ``~/.cache/kerapipe``), for the processes
    that come next: a queued experiment, a resumed run, the predict stage.

    Keras on JAX compiles each weight initializer (one per shape) and each step when first
    called: 40 s of a 70 s MobileNetV2 run on a 2-core CPU, all of it read back by the next
    run. The cached program is the one XLA compiled, so the results are the same. JAX's
    cache is bounded (``COMPILATION_CACHE_MAX_BYTES``, least recently used go first) and
    locked while written, so experiments running at once share it. Each of these JAX
    settings that the user gave in the environment (``JAX_COMPILATION_CACHE_DIR``, ...)
    stays as given, and ``JAX_ENABLE_COMPILATION_CACHE=false`` turns the cache off."""
    if chosen_backend() != "jax":
        return
    import jax

    from kerapipe.remote_cache import cache_folder

    settings = {
        "jax_compilation_cache_dir": str(cache_folder(remote_cache_dir) / "jax"),
        "jax_persistent_cache_min_compile_time_secs": 0.0,  # JAX's 1 s skips the initializers
        "jax_compilation_cache_max_size": COMPILATION_CACHE_MAX_BYTES,
    }
    for name, value in settings.items():
        if name.upper() not in os.environ:  # JAX reads each from this variable
            jax.config.update(name, value)


def has_gpu() -> bool:
    """Whether the backend computes on a GPU."""
    if current() == "jax":
        import jax

        return jax.default_backend() == "gpu"
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def device_names() -> list[str]:
    """The devices the backend sees (all processes' under a multi-process JAX run)."""
    if current() == "jax":
        import jax

        return [f"{d.platform}:{d.id}" for d in jax.devices()]
    import tensorflow as tf

    return [device.name for device in tf.config.list_logical_devices()]


def steps_per_execution(setting: int | str, distribution: str = "none") -> int:
    """``TRAINING.STEPS_PER_EXECUTION`` for the backend in use: ``auto`` runs 32 batches per
    call of TensorFlow's compiled loop (a ``tf.while_loop``: the same updates, with the
    Python between batches paid once per 32); 1 under ``DISTRIBUTION: mirrored``, where that
    loop fails in TensorFlow, and on JAX, whose Keras loop steps in Python either way."""
    if setting != "auto":
        return int(setting)
    return 32 if current() == "tensorflow" and distribution == "none" else 1


def inference_step(model: Any) -> Callable[[Any], np.ndarray]:
    """A compiled ``batch -> outputs`` call for a Keras model or a loaded SavedModel, as
    ``model.predict`` runs it (an eager call per batch is much slower for small models).
    TensorFlow: one ``tf.function``; JAX: Keras' own jitted predict step; a SavedModel
    (``tf`` format loaded under JAX) runs its serving signature in TensorFlow."""
    if isinstance(model, SavedModel):
        return model
    if current() == "jax":
        import numpy as np

        return lambda batch: _as_array(model.predict_on_batch(np.asarray(batch)))
    import tensorflow as tf

    step = tf.function(lambda batch: model(batch, training=False), reduce_retracing=True)
    return lambda batch: _as_array(step(batch))


def _as_array(output: Any) -> np.ndarray:
    import numpy as np

    if isinstance(output, dict):  # a SavedModel signature returns {name: tensor}
        output = next(iter(output.values()))
    return np.asarray(output)


class SavedModel:
    """A ``tf`` format model (SavedModel) called through its serving signature with
    TensorFlow itself: Keras' ``TFSMLayer`` runs on the TensorFlow backend only."""

    def __init__(self, path: str) -> None:
        import tensorflow as tf

        self.loaded = tf.saved_model.load(path)
        self.signature = self.loaded.signatures["serving_default"]
        # a signature takes its input by name only
        self.input_name = next(iter(self.signature.structured_input_signature[1]))

    def __call__(self, batch: Any) -> np.ndarray:
        import tensorflow as tf

        tensor = tf.convert_to_tensor(batch, dtype=tf.float32)
        return _as_array(self.signature(**{self.input_name: tensor}))


def load_saved_model(path: str) -> Any:
    """A ``tf`` format model, ready for ``inference_step``: Keras' ``TFSMLayer`` on
    TensorFlow, a ``SavedModel`` on JAX."""
    if current() == "jax":
        return SavedModel(path)
    import keras

    return keras.layers.TFSMLayer(path, call_endpoint="serving_default")
