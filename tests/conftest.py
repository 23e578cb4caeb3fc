"""Shared fixtures: the real sample data, params pointing into a temporary folder, and a copy
of the project in a temporary git repo for end-to-end runs of the real `dvc`."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from kerapipe.sample_data import write_digits
from tests.helpers import REPO, copy_project


@pytest.fixture(autouse=True)
def _work_in_tmp_path(tmp_path, monkeypatch):
    """Run every test in its own folder, so outputs written relative to the working directory
    (DVCLive's dvclive/, say) never land in the repository."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def digits(tmp_path_factory) -> Path:
    """The embedded digits sample, written once per test session (read-only for tests)."""
    return write_digits(tmp_path_factory.mktemp("sample") / "digits")


@pytest.fixture
def default_params() -> dict:
    """A fresh copy of the project's params.yaml, safe to modify."""
    return yaml.safe_load((REPO / "params.yaml").read_text())


@pytest.fixture
def make_params(tmp_path, digits, default_params):
    """Build a params dict whose paths point into ``tmp_path``; write it to params.yaml there."""

    def make(updates: dict | None = None, data_dir: Path | None = None) -> tuple[dict, Path]:
        params = copy.deepcopy(default_params)
        params["DATA"].update(
            INVENTORY_DATA_DIR=str(data_dir or digits / "train"),
            INVENTORY_CSV_DIR=str(tmp_path / "inventory"),
            TRAINING_MODEL_DIR=str(tmp_path / "models"),
            PREDICTION_DATA_DIR=str(digits / "unlabelled"),
            PREDICTION_LABELS=str(digits / "unlabelled_labels.csv"),
            PREDICTION_OUTPUT_DIR=str(tmp_path / "predictions"),
        )
        for dotted, value in (updates or {}).items():
            group, *keys = dotted.split(".")
            target = params[group]
            for key in keys[:-1]:
                target = target[key]
            target[keys[-1]] = value
        path = tmp_path / "params.yaml"
        path.write_text(yaml.safe_dump(params, sort_keys=False))
        return params, path

    return make


@pytest.fixture
def project(tmp_path) -> Path:
    """This project's files (tracked and not ignored) copied into a fresh git repo, committed."""
    return copy_project(tmp_path / "project")
