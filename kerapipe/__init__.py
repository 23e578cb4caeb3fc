"""kerapipe: a reproducible Keras 3 image pipeline (inventory -> train -> predict) for DVC.

Importing kerapipe registers every built-in component name; it does not import TensorFlow.
"""

from kerapipe import catalog  # noqa: F401  (fills the registries)
from kerapipe.config import Params, load_params
from kerapipe.errors import ConfigError, DataError, KerapipeError, ModelError

__all__ = ["ConfigError", "DataError", "KerapipeError", "ModelError", "Params", "load_params"]
__version__ = "0.1.0"
