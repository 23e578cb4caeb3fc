"""The `kerapipe` command as a user runs it: fast help, validate, components, clear failures."""

import subprocess
import sys

import pytest

from tests.helpers import BIN, kerapipe_without_tensorflow, tool_env


def kerapipe(*args, cwd=None):
    return subprocess.run(
        [str(BIN / "kerapipe"), *args], capture_output=True, text=True, cwd=cwd, env=tool_env()
    )


def test_help_lists_every_command():
    result = kerapipe("--help")
    assert result.returncode == 0
    for command in ("inventory", "train", "predict", "run", "validate", "components"):
        assert command in result.stdout


@pytest.mark.parametrize("args", [["--help"], ["validate"], ["components"]])
def test_fast_commands_do_not_import_tensorflow(args, make_params):
    _, path = make_params()
    argv = [*args, "--params", str(path)] if args == ["validate"] else args
    result = kerapipe_without_tensorflow(path.parent, *argv)
    assert result.returncode == 0, result.stderr


def test_validate_reports_what_it_found(make_params):
    _, path = make_params()
    result = kerapipe("validate", "--params", str(path))
    assert result.returncode == 0, result.stderr
    assert "1617 training examples" in result.stdout and "180 files to predict" in result.stdout


def test_validate_checks_the_data_too(make_params, tmp_path):
    _, path = make_params({"DATA.PREDICTION_DATA_DIR": str(tmp_path / "missing")})
    result = kerapipe("validate", "--params", str(path))
    assert result.returncode == 1
    assert "DATA.PREDICTION_DATA_DIR: folder" in result.stderr


def test_components_lists_every_kind():
    result = kerapipe("components")
    assert result.returncode == 0
    for heading in (
        "models:",
        "losses:",
        "optimizers:",
        "metrics:",
        "callbacks:",
        "sources:",
        "tasks:",
    ):
        assert heading in result.stdout
    for name in (
        "simple_cnn",
        "xception",
        "INPUT_SHAPE",
        "adam",
        "early_stopping",
        "local",
        "classification",
    ):
        assert name in result.stdout


def test_invalid_yaml_is_one_message_and_non_zero_exit(tmp_path):
    (tmp_path / "params.yaml").write_text("DATA: {INVENTORY_DATA_DIR: [oops}\n")
    result = kerapipe("train", cwd=tmp_path)
    assert result.returncode == 1
    assert "kerapipe train: error: params.yaml is not valid YAML at line 1" in result.stderr
    assert "Traceback" not in result.stderr


def test_config_error_exits_non_zero_without_traceback(make_params):
    _, path = make_params({"MODEL.MODEL_NAME": "resnet9000"})
    result = kerapipe("inventory", "--params", str(path))
    assert result.returncode == 1
    assert "MODEL.MODEL_NAME: unknown model 'resnet9000'" in result.stderr
    assert "Traceback" not in result.stderr


def test_version():
    from kerapipe import __version__

    result = kerapipe("--version")
    assert result.returncode == 0 and result.stdout == f"kerapipe {__version__}\n"


@pytest.mark.e2e  # TensorFlow in a process of its own
def test_tensorflow_start_up_lines_stay_out_unless_verbose(make_params):
    """Checking a callback's arguments imports TensorFlow: its native notices are dropped."""
    callbacks = [{"CALLBACK_NAME": "early_stopping", "CALLBACK_PARAMS": {"patience": 2}}]
    _, path = make_params({"TRAINING.CALLBACKS": callbacks})
    from kerapipe.native_logs import NOISE

    def notices(text: str) -> int:
        return sum(1 for line in text.splitlines() if NOISE.match(line))

    bare = subprocess.run([sys.executable, "-c", "import tensorflow"], capture_output=True)
    quiet = kerapipe("validate", "--params", str(path))
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == "", quiet.stderr
    loud = kerapipe("validate", "-v", "--params", str(path))
    assert loud.returncode == 0
    assert notices(loud.stderr) > 0 or notices(bare.stderr.decode()) == 0  # -v lets them by


def test_quiet_prints_only_problems(make_params):
    _, path = make_params()
    result = kerapipe("inventory", "-q", "--params", str(path))
    assert result.returncode == 0 and result.stdout == "" and result.stderr == ""
    normal = kerapipe("inventory", "--params", str(path))
    assert "Reusing the existing inventory" in normal.stderr


@pytest.mark.e2e  # TensorFlow in a process of its own
@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_stages_start_tensorflow_with_only_what_they_need(backend, make_params):
    """On this CPU-only host (and under JAX anywhere) a computing stage turns Grappler off
    when it starts, and on the tensorflow backend JAX is not imported; here `predict` stops
    at its missing model, after that."""
    _, path = make_params({"TRAINING.BACKEND": backend})
    code = (
        "import sys; from kerapipe.cli import main\n"
        "code = main(sys.argv[1:])\n"
        "import tensorflow as tf\n"
        "assert not tf.config.list_physical_devices('GPU'), 'this test needs a host without GPU'\n"
        "off = tf.config.optimizer.get_experimental_options()['disable_meta_optimizer']\n"
        "print(code, off, 'jax' in sys.modules)"
    )
    argv = ["predict", "--params", str(path)]
    result = subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, env=tool_env()
    )
    assert result.returncode == 0, result.stderr
    assert "kerapipe predict: error:" in result.stderr, result.stderr  # the missing model
    assert result.stdout.split() == ["1", "True", str(backend == "jax")], result.stdout
