"""A JSON Schema of params.yaml, for editors (``kerapipe schema``).

Built from the config models, so each key carries the description written there, with the
registered names as enums and, for the params that belong to a named component (a task's
``TASK_PARAMS``, a model's ``MODEL_PARAMS``, an augmentation's ``AUGMENTATION_PARAMS``), that
component's own schema, chosen by the name beside it. Plug-ins installed through entry points
are in it too. No TensorFlow is imported.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from kerapipe.config import Params
from kerapipe.registry import (
    AUGMENTATIONS,
    CALLBACKS,
    LOSSES,
    METRICS,
    MODELS,
    OPTIMIZERS,
    SOURCES,
    TASKS,
    Registry,
)

DIALECT = "https://json-schema.org/draft/2020-12/schema"
REF = "#/$defs/{model}"
DEFAULT_TASK = Params.model_fields["PIPELINE"].default_factory().TASK_NAME


def params_schema() -> dict[str, Any]:
    """The JSON Schema of a params file."""
    schema = Params.model_json_schema(ref_template=REF)
    schema = {"$schema": DIALECT, "title": "kerapipe params", **schema}
    defs = schema["$defs"]
    data = defs["DataParams"]["properties"]
    for key in [k for k in data if k.endswith("_SOURCE")]:
        _name_enum(data[key], SOURCES)
    data["STORAGE_OPTIONS"]["propertyNames"] = {"enum": SOURCES.names()}
    _name_enum(defs["PipelineParams"]["properties"]["TASK_NAME"], TASKS)
    for key, registry in [
        ("MODEL_NAME", MODELS),
        ("LOSS_NAME", LOSSES),
        ("OPTIMIZER_NAME", OPTIMIZERS),
    ]:
        _name_enum(defs["ModelParams"]["properties"][key], registry)
    _name_enum(defs["MetricSpec"]["properties"]["METRIC_NAME"], METRICS)
    _name_enum(defs["CallbackSpec"]["properties"]["CALLBACK_NAME"], CALLBACKS)
    _name_enum(defs["AugmentationSpec"]["properties"]["AUGMENTATION_NAME"], AUGMENTATIONS)

    _choose_params(defs, "PipelineParams", "TASK_NAME", "TASK_PARAMS", TASKS, DEFAULT_TASK)
    _choose_params(defs, "ModelParams", "MODEL_NAME", "MODEL_PARAMS", MODELS)
    _choose_params(
        defs, "AugmentationSpec", "AUGMENTATION_NAME", "AUGMENTATION_PARAMS", AUGMENTATIONS
    )
    return schema


def _name_enum(prop: dict[str, Any], registry: Registry) -> None:
    """Restrict a name to the registered ones (in the string branch of ``str | None``)."""
    target = next((b for b in prop.get("anyOf", []) if b.get("type") == "string"), prop)
    target["enum"] = registry.names()


def _choose_params(
    defs: dict[str, Any],
    group: str,
    name_key: str,
    params_key: str,
    registry: Registry,
    default: str | None = None,
) -> None:
    """In ``defs[group]``, validate ``params_key`` with the schema of the component that
    ``name_key`` names (``default`` when the name is left out); the names that share one
    params model (the 40 keras.applications backbones) share one rule."""
    by_model: dict[type[BaseModel], list[str]] = {}
    for name in registry.names():
        by_model.setdefault(registry.get(name).Params, []).append(name)
    rules = []
    for model, names in by_model.items():
        then = {"properties": {params_key: _component_schema(model, defs)}}
        named = {"const": names[0]} if len(names) == 1 else {"enum": names}
        rules.append(
            {"if": {"properties": {name_key: named}, "required": [name_key]}, "then": then}
        )
        if default in names:
            rules.append({"if": {"not": {"required": [name_key]}}, "then": then})
    defs[group]["allOf"] = rules


def _component_schema(model: type[BaseModel], defs: dict[str, Any]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template=REF)
    defs.update(schema.pop("$defs", {}))
    return schema
