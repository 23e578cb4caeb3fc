"""Pretrained weights, fetched the way Keras fetches them (issue 23, item 1): ``imagenet`` from
Keras' cache, once per machine, with no network when the file is there and one message naming
the URL and where to put the file when it cannot be fetched; a weights file by path or by URL
on a data source (a local HTTP server, the S3 test server), its sha256 checked; and the sha256
of what was loaded recorded, in the weights fingerprint too. No test reaches the internet:
Keras' downloads go through a proxy that refuses every connection."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kerapipe.config import validate_params
from kerapipe.errors import ConfigError, ModelError
from kerapipe.models.base import model_builder
from kerapipe.models.weights import WeightsSpec, fetch_weights

OFFLINE = {"HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9"}
MOBILENET_V2 = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"

RESOLVE = """
import json, sys
from kerapipe.config import validate_params
from kerapipe.errors import KerapipeError
from kerapipe.models.base import model_builder
params = validate_params(json.loads(sys.argv[1]))
builder = model_builder(params)
try:
    files = builder.resolve_weights(params.DATA)
except KerapipeError as err:
    print("ERROR", err)
    raise SystemExit(1)
model = builder.build(__import__("kerapipe.models.base").models.base.Head(2, "softmax"))
kernel = model.get_layer("base").get_layer("Conv1").get_weights()[0]
print(json.dumps({"files": {k: [f.path, f.sha256] for k, f in files.items()},
                  "kernel": float(kernel.sum())}))
"""


def backbone_params(default_params: dict, tmp_path: Path, **model_params) -> dict:
    params = copy.deepcopy(default_params)
    params["DATA"]["REMOTE_CACHE_DIR"] = str(tmp_path / "cache")
    params["MODEL"]["MODEL_NAME"] = "mobilenet_v2"
    params["MODEL"]["MODEL_PARAMS"] = {"INPUT_SHAPE": [32, 32, 3], **model_params}
    return params


def resolve(params: dict, keras_home: Path) -> subprocess.CompletedProcess:
    """Fetch the params' weights in a fresh process whose Keras keeps files in
    ``keras_home`` and reaches no network."""
    env = {**os.environ, **OFFLINE, "KERAS_HOME": str(keras_home), "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("NO_PROXY", None)
    env.pop("no_proxy", None)
    return subprocess.run(
        [sys.executable, "-c", RESOLVE, json.dumps(params)],
        capture_output=True, text=True, env=env, timeout=600, check=False,
    )  # fmt: skip


def headless_weights(path: Path) -> float:
    """A weights file of a headless MobileNetV2 (random), saved as Keras' own ``.h5``
    files are, or as Keras 3 saves weights alone when ``path`` ends in ``.weights.h5``; the
    sum of its first kernel, to know it when loaded."""
    import keras

    base = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3))
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.endswith(".weights.h5"):
        base.save_weights(path)
    else:
        base.save(path)
    return float(base.get_layer("Conv1").get_weights()[0].sum())


@pytest.mark.e2e  # TensorFlow in a process of its own
def test_imagenet_offline_names_the_url_and_where_to_put_the_file(default_params, tmp_path):
    done = resolve(backbone_params(default_params, tmp_path, WEIGHTS="imagenet"), tmp_path / "k")
    assert done.returncode == 1, done.stderr[-2000:]
    keras_line, message = done.stdout.strip().splitlines()  # Keras says what it fetches
    assert keras_line.startswith("Downloading data from https://storage.googleapis.com/")
    assert message.startswith("ERROR MODEL.MODEL_PARAMS.WEIGHTS: imagenet needs " + MOBILENET_V2)
    assert "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/" in message
    assert f"put it at {tmp_path / 'k' / 'models' / MOBILENET_V2}" in message
    print(message)


@pytest.mark.e2e  # TensorFlow in a process of its own
def test_imagenet_in_keras_cache_is_used_without_network(default_params, tmp_path):
    """The file Keras would fetch, already in its cache (``$KERAS_HOME/models``): loaded,
    with no connection tried (every one would be refused), and its sha256 recorded."""
    cached = tmp_path / "k" / "models" / MOBILENET_V2
    kernel = headless_weights(cached)
    done = resolve(backbone_params(default_params, tmp_path, WEIGHTS="imagenet"), tmp_path / "k")
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    path, sha256 = found["files"]["MODEL.MODEL_PARAMS.WEIGHTS"]
    assert Path(path) == cached
    assert sha256 == hashlib.sha256(cached.read_bytes()).hexdigest()
    assert found["kernel"] == pytest.approx(kernel)


@pytest.mark.e2e  # TensorFlow in a process of its own
def test_weights_by_url_over_http_with_their_sha256(default_params, tmp_path, http_folder):
    root, url = http_folder
    kernel = headless_weights(root / "mine.h5")
    sha256 = hashlib.sha256((root / "mine.h5").read_bytes()).hexdigest()
    params = backbone_params(
        default_params, tmp_path, WEIGHTS=f"{url}/mine.h5", WEIGHTS_SHA256=sha256.upper()
    )
    done = resolve(params, tmp_path / "k")
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    path, recorded = found["files"]["MODEL.MODEL_PARAMS.WEIGHTS"]
    assert recorded == sha256 and found["kernel"] == pytest.approx(kernel)
    assert Path(path).is_relative_to(tmp_path / "cache")  # fetched into the remote cache

    params["MODEL"]["MODEL_PARAMS"]["WEIGHTS_SHA256"] = "0" * 64
    refused = resolve(params, tmp_path / "k")
    assert refused.returncode == 1
    assert f"has the sha256 {sha256}, not the {'0' * 64}" in refused.stdout

    # Keras 3's weights-only file: its cached copy keeps the .weights.h5 ending Keras reads
    kernel = headless_weights(root / "mine.weights.h5")
    params = backbone_params(default_params, tmp_path, WEIGHTS=f"{url}/mine.weights.h5")
    done = resolve(params, tmp_path / "k")
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["kernel"] == pytest.approx(kernel)


def test_weights_by_url_on_s3(default_params, tmp_path, s3):
    (tmp_path / "up").mkdir()
    (tmp_path / "up" / "w.h5").write_bytes(b"not really weights, but a file to fetch")
    url = s3.upload(tmp_path / "up", "weights")
    params = validate_params(backbone_params(default_params, tmp_path, WEIGHTS=f"{url}/w.h5"))
    spec = WeightsSpec("MODEL.MODEL_PARAMS.WEIGHTS", f"{url}/w.h5")
    fetched = fetch_weights(spec, params.DATA)
    assert Path(fetched.path).read_bytes() == b"not really weights, but a file to fetch"
    missing = WeightsSpec("MODEL.MODEL_PARAMS.WEIGHTS", f"{url}/nope.h5")
    with pytest.raises(ModelError, match="nope.h5 not found on its source"):
        fetch_weights(missing, params.DATA)


def test_weights_are_checked_at_the_door(default_params, tmp_path):
    """A malformed sha256 and a missing local file are named before any work; imagenet and
    URLs are fetched by the train stage, not by the checks (no network for validate)."""
    from kerapipe.checks import check_params

    bad = backbone_params(default_params, tmp_path, WEIGHTS="imagenet", WEIGHTS_SHA256="abc")
    with pytest.raises(ConfigError, match="WEIGHTS_SHA256: must be the 64 hexadecimal"):
        check_params(validate_params(bad))
    check_params(validate_params(backbone_params(default_params, tmp_path, WEIGHTS="imagenet")))
    missing = backbone_params(default_params, tmp_path, INITIAL_WEIGHTS=str(tmp_path / "x.keras"))
    with pytest.raises(ConfigError, match="INITIAL_WEIGHTS: file .*x.keras' not found"):
        check_params(validate_params(missing))


def test_other_weights_change_the_weights_fingerprint(default_params, tmp_path):
    from kerapipe import fingerprints

    params = validate_params(backbone_params(default_params, tmp_path, WEIGHTS="imagenet"))
    one = fingerprints.weights_settings(params, b"csv", (), {"W": "1" * 64})
    other = fingerprints.weights_settings(params, b"csv", (), {"W": "2" * 64})
    assert one != other and "W:sha256" in fingerprints.changes(one, other)
    builder = model_builder(params)
    assert [spec.given for spec in builder.weights_specs()] == ["imagenet"]
