"""The base of every params group, the constants the params share with the layers below, and
the small checks the groups' validators use. Imports no TensorFlow."""

from __future__ import annotations

import secrets
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from kerapipe.errors import ConfigError
from kerapipe.param_messages import validation_messages

MAX_SEED = 2**32 - 1  # NumPy, TensorFlow and scikit-learn take seeds below 2**32
DEFAULT_MAX_IMAGE_PIXELS = 89_478_485  # Pillow's own limit (about 9459 x 9459)
DEFAULT_CACHE_MAX_GB = 10.0  # TRAINING.CACHE_MAX_GB: the decoded image cache's size


class Group(BaseModel):
    """A params group: unknown keys and wrongly typed values are errors."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def validate_group(model: type[BaseModel], data: Any, key: str) -> Any:
    """Validate ``data`` against a plug-in's own params model, naming ``key`` in errors."""
    try:
        return model.model_validate(data if data is not None else {})
    except ValidationError as err:
        raise ConfigError("; ".join(validation_messages(err, model, prefix=key))) from None


def require_unique(values: list, what: str, field: str = "") -> None:
    """Raise a ValueError (a pydantic validator's error) naming the repeated ``values``;
    ``field`` leads the message when the validator checks more than one field."""
    repeated = sorted({str(v) for v in values if values.count(v) > 1})
    if repeated:
        lead = f"{field} repeats" if field else "repeats"
        raise ValueError(f"{lead} {', '.join(repeated)}; each {what} must be unique")


def resolve_seed(seed: int) -> int:
    """A positive seed is used as is; ``<= 0`` draws a random one, to be recorded by the caller."""
    return seed if seed > 0 else secrets.randbelow(2**31 - 2) + 1
