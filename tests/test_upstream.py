"""The private APIs of other packages kerapipe uses, all behind kerapipe/upstream.py: each test
fails when one of them changes upstream, before a user meets the change."""

from __future__ import annotations

import os

import pytest

from kerapipe import upstream


def test_keras_applications_fetch_through_get_file_in_keras_home(tmp_path):
    """Keras' applications call ``keras.src.utils.file_utils.get_file`` for their weights,
    and keep files under ``keras_home()``: recorded, with the target the message names
    (the download itself is refused: every connection goes to a closed port)."""
    import keras
    from keras.src.backend.config import keras_home
    from keras.src.utils import file_utils

    original = file_utils.get_file
    os.environ.update(HTTPS_PROXY="http://127.0.0.1:9", HTTP_PROXY="http://127.0.0.1:9")
    try:
        with (
            upstream.keras_downloads() as calls,
            pytest.raises(Exception, match="Connection refused"),
        ):
            keras.applications.VGG16(include_top=False, weights="imagenet", input_shape=(32, 32, 3))
    finally:
        for name in ("HTTPS_PROXY", "HTTP_PROXY"):
            os.environ.pop(name, None)
    assert file_utils.get_file is original  # put back, whatever happened
    (call,) = calls
    assert call.fname == "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
    assert call.origin.startswith("https://storage.googleapis.com/tensorflow/keras-applications/")
    assert call.file_hash and call.path is None
    assert call.target == os.path.join(keras_home(), "models", call.fname)


def test_dvclive_skips_studio_and_its_repository_hook(tmp_path, monkeypatch):
    """``Live._studio_events_to_skip`` holds "data" when no Studio is set up, and
    ``Live._init_dvc`` is the hook where DVCLive looks for the repository."""
    from dvclive import Live

    monkeypatch.chdir(tmp_path)  # a plain folder: no DVC repository
    assert callable(Live._init_dvc)
    live = upstream.LiveInRepositoryOnly("dvclive", dvcyaml=None, save_dvc_exp=False)
    assert upstream.studio_drops_data(live)
    live.log_metric("loss", 1.0)
    live.next_step()
    live.end()
    assert (tmp_path / "dvclive" / "metrics.json").is_file()
    assert not (tmp_path / ".dvc").exists()


def test_jax_has_the_coordination_barrier():
    """JAX's distributed state holds the coordination client, whose class waits at a named
    barrier with a timeout (only a multi-process run has one running)."""
    from jax._src import distributed
    from jax._src.lib import _jax

    assert hasattr(distributed.global_state, "client")
    assert callable(_jax.DistributedRuntimeClient.wait_at_barrier)
