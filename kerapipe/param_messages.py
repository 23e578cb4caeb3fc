"""Problems found in the params, worded for the user: each pydantic error as one
'KEY.PATH: what is wrong (allowed: ...)' line, and several problems as one message."""

from __future__ import annotations

from typing import Any, get_args

from pydantic import BaseModel, ValidationError

from kerapipe.registry import suggest


def validation_messages(
    err: ValidationError, model: type[BaseModel], prefix: str = ""
) -> list[str]:
    """Turn pydantic errors into 'KEY.PATH: what is wrong (allowed: ...)' lines."""
    messages = []
    for error in err.errors():
        loc = [str(part) for part in error["loc"]]
        path = ".".join([prefix, *loc] if prefix else loc)
        kind = error["type"]
        if kind == "extra_forbidden":
            allowed = _field_names(model, error["loc"][:-1])
            messages.append(
                f"{path}: unknown key.{suggest(loc[-1], allowed)} "
                f"Allowed keys here: {', '.join(allowed)}."
            )
        elif kind == "missing":
            messages.append(f"{path}: required key is missing.")
        elif kind == "value_error":  # our own validators: the message says it all
            message = str(error["msg"]).removeprefix("Value error, ")
            got = "" if isinstance(error["input"], dict) else f" (got {error['input']!r})"
            messages.append(f"{path}: {message}{got}." if path else f"{message}{got}.")
        elif kind == "secret":  # a value that holds a secret is never shown
            messages.append(f"{path}: {error['msg']}.")
        else:
            messages.append(f"{path}: {error['msg']} (got {error['input']!r}).")
    return messages


def _field_names(model: type[BaseModel], loc: tuple) -> list[str]:
    """The keys allowed at ``loc`` inside ``model`` (list indices are skipped)."""
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        model = _model_in(field.annotation) if field else None
        if model is None:
            return []
    return list(model.model_fields)


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside an annotation such as ``list[MetricSpec] | None``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found:
            return found
    return None


def summarise_problems(source: str, problems: list[str]) -> str:
    """One message for one problem, a list for several, led by where they were found."""
    if len(problems) == 1:
        return f"{source}: {problems[0]}"
    lines = "\n".join(f"  - {p}" for p in problems)
    return f"{source} has {len(problems)} problems:\n{lines}"
