"""`kerapipe schema`: a JSON Schema of params.yaml that editors use, with the registered names
as enums, each key's description, and each named component's own params."""

import json
import subprocess

import jsonschema
import pytest
import yaml

from kerapipe.schema import params_schema
from tests.helpers import BIN, REPO, tool_env

SHIPPED = [REPO / "params.yaml", *sorted((REPO / "params").glob("*.yaml"))]


@pytest.fixture(scope="module")
def validator():
    return jsonschema.Draft202012Validator(params_schema())


def test_the_committed_schema_is_current():
    printed = subprocess.run(
        [str(BIN / "kerapipe"), "schema"], capture_output=True, text=True, env=tool_env()
    )
    assert printed.returncode == 0, printed.stderr
    committed = (REPO / "params.schema.json").read_text()
    assert json.loads(printed.stdout) == json.loads(committed), (
        "params.schema.json is out of date: run `kerapipe schema > params.schema.json`"
    )


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_params_file_names_the_schema_and_follows_it(path, validator):
    first = path.read_text().splitlines()[0]
    assert first.startswith("# yaml-language-server: $schema=")
    assert (path.parent / first.split("=", 1)[1]).resolve() == REPO / "params.schema.json"
    errors = [error.message for error in validator.iter_errors(yaml.safe_load(path.read_text()))]
    assert errors == []


@pytest.mark.parametrize(
    ("group", "key", "value", "message"),
    [
        ("TRAINING", "BATCH_SIZ", 64, "'BATCH_SIZ' was unexpected"),
        ("MODEL", "MODEL_NAME", "resnet9000", "'resnet9000' is not one of"),
        ("MODEL", "MODEL_PARAMS", {"INPUT_SHAPE": [16, 16, 1], "NUM_CLASSES": 10,
                                   "DROPOUTT": 0.1}, "'DROPOUTT' was unexpected"),
        ("PIPELINE", "TASK_PARAMS", {"CLASS_LABELS": [0, 1]}, "'CLASS_NAMES' is a dependency"),
        ("PIPELINE", "TASK_PARAMS", {"CLASS_NAME": ["a", "b"]}, "'CLASS_NAME' was unexpected"),
    ],
)  # fmt: skip
def test_the_schema_catches_what_validate_catches(validator, group, key, value, message):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params[group][key] = value
    errors = " ".join(error.message for error in validator.iter_errors(params))
    assert message in errors


def test_every_key_has_a_description():
    defs = params_schema()["$defs"]
    for group in ("DataParams", "PipelineParams", "InventoryParams", "ModelParams",
                  "TrainingParams", "ExportParams"):  # fmt: skip
        assert defs[group].get("description"), group
        for key, prop in defs[group]["properties"].items():
            assert prop.get("description"), f"{group}.{key}"
