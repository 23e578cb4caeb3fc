"""Shared fixtures: the real sample data, params pointing into a temporary folder, a copy of
the project in a temporary git repo for end-to-end runs of the real `dvc`, and real storage
servers on 127.0.0.1 (an S3-compatible one, an HTTP one) for the remote sources."""

from __future__ import annotations

import copy
import functools
import http.server
import logging
import os
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from kerapipe.sample_data import write_digits
from tests.helpers import REPO, copy_project

# The secret access key the S3 tests use: no file written and no output printed may hold it.
PLANTED_SECRET = "kp-PLANTED-secret-5d1f0c3a9e7b"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The modules holding end-to-end tests first, each module's tests kept together (its
    fixtures built once per worker): pytest-xdist's work stealing (``--dist worksteal``) then
    ends both workers on quick tests, not one worker on a long test while the other idles."""
    slow = {item.path for item in items if item.get_closest_marker("e2e")}
    items.sort(key=lambda item: item.path not in slow)


@pytest.fixture(autouse=True)
def _work_in_tmp_path(tmp_path, monkeypatch):
    """Run every test in its own folder, so outputs written relative to the working directory
    (DVCLive's dvclive/, say) never land in the repository."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(autouse=True, scope="session")
def _user_cache_in_tmp(tmp_path_factory):
    """The user's cache folder (``$XDG_CACHE_HOME/kerapipe``: remote files, decoded images)
    in a temporary folder, shared by the session's tests (and the `dvc` they run) as by a
    user's runs, never the real ~/.cache."""
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("user-cache"))


@pytest.fixture(scope="session")
def digits(tmp_path_factory) -> Path:
    """The embedded digits sample, written once per test session (read-only for tests)."""
    return write_digits(tmp_path_factory.mktemp("sample") / "digits")


@pytest.fixture(scope="session")
def tiny_preset(tmp_path_factory) -> Path:
    """A tiny keras-hub preset folder (a ResNet backbone and its image converter, ImageNet's
    mean and standard deviation), saved once per session: keras_hub's PRESET, offline."""
    import keras_hub

    backbone = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[3], stackwise_num_filters=[64, 16],
        stackwise_num_blocks=[1, 1], stackwise_num_strides=[1, 2], block_type="basic_block",
        image_shape=(None, None, 3),
    )  # fmt: skip
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    converter = keras_hub.layers.ResNetImageConverter(
        image_size=(32, 32),
        scale=[1 / (255 * s) for s in std],
        offset=[-m / s for m, s in zip(mean, std, strict=True)],
    )
    folder = tmp_path_factory.mktemp("preset") / "tiny_resnet"
    backbone.save_to_preset(str(folder))
    converter.save_to_preset(str(folder))
    return folder


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


@pytest.fixture(scope="session")
def s3_server() -> str:
    """An S3-compatible server (moto's server mode) on 127.0.0.1 and a free port, started
    once per test session (per xdist worker) and shared by every S3 test; its URL."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@dataclass
class S3:
    """The test server, a fresh bucket on it, and a client of our own to look at it."""

    endpoint: str
    bucket: str
    fs: object  # an s3fs.S3FileSystem

    def url(self, *parts: str) -> str:
        return "/".join([f"s3://{self.bucket}", *parts])

    def upload(self, local: Path, *parts: str) -> str:
        """Copy a local folder into the bucket; return its URL."""
        url = self.url(*parts)
        files = sorted(p for p in local.rglob("*") if p.is_file())
        remote = [f"{url}/{file.relative_to(local).as_posix()}" for file in files]
        self.fs.put([str(file) for file in files], remote)  # concurrent requests
        return url


@pytest.fixture
def s3(s3_server, monkeypatch) -> S3:
    """Credentials and the endpoint in the environment, as a user of S3 sets them (the
    secret key is PLANTED_SECRET), and a bucket of this test's own."""
    import s3fs

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "kerapipe-test-key-id")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", PLANTED_SECRET)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # never ask a cloud's metadata
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/kerapipe-tests")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/kerapipe-tests")
    fs = s3fs.S3FileSystem(endpoint_url=s3_server, skip_instance_cache=True)
    bucket = f"kerapipe-{uuid.uuid4().hex[:12]}"
    fs.mkdir(bucket)
    return S3(s3_server, bucket, fs)


@pytest.fixture
def http_folder(tmp_path) -> tuple[Path, str]:
    """A local folder served over HTTP on 127.0.0.1 (Python's own server, with folder
    pages); the folder and its URL."""
    root = tmp_path / "served"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()
