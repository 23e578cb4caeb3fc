"""Loading and validating params: every bad value gives one message naming the key path."""

import json

import pytest
import yaml

from kerapipe.checks import load_checked_params
from kerapipe.config import load_params, resolve_seed
from kerapipe.errors import ConfigError
from kerapipe.params_file import read_params_file
from tests.helpers import REPO


def write(tmp_path, params, name="params.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(params) if name.endswith(".yaml") else json.dumps(params))
    return path


def error_for(tmp_path, params) -> str:
    """The message of loading ``params`` with every check a stage runs first."""
    with pytest.raises(ConfigError) as caught:
        load_checked_params(write(tmp_path, params))
    return str(caught.value)


def test_default_params_load(default_params, tmp_path):
    params = load_params(write(tmp_path, default_params))
    assert params.MODEL.MODEL_NAME == "simple_cnn"
    assert params.PIPELINE.TASK_PARAMS["CLASS_NAMES"][0] == "zero"
    assert params.DATA.TRAINING_MODEL_FORMAT == "keras"


def test_old_config_json_layout_is_accepted(default_params, tmp_path):
    params = load_params(write(tmp_path, default_params, "config.json"))
    assert default_params["TRAINING"]["BATCH_SIZE"] == params.TRAINING.BATCH_SIZE


def test_misspelt_key_names_path_and_suggests(default_params, tmp_path):
    default_params["TRAINING"]["BATCH_SIZ"] = 64
    message = error_for(tmp_path, default_params)
    assert "TRAINING.BATCH_SIZ: unknown key" in message
    assert "Did you mean 'BATCH_SIZE'?" in message
    assert "NUM_EPOCHS" in message  # the allowed keys are listed


def test_misspelt_key_inside_a_list(default_params, tmp_path):
    default_params["MODEL"]["METRICS"] = [{"METRIC_NAM": "accuracy"}]
    message = error_for(tmp_path, default_params)
    assert "MODEL.METRICS.0.METRIC_NAM: unknown key" in message
    assert "Did you mean 'METRIC_NAME'?" in message


def test_wrong_type_is_named(default_params, tmp_path):
    default_params["TRAINING"]["BATCH_SIZE"] = "big"
    assert "TRAINING.BATCH_SIZE" in error_for(tmp_path, default_params)


def test_out_of_range_value(default_params, tmp_path):
    default_params["INVENTORY"]["VALIDATION_SPLIT"] = 1.5
    message = error_for(tmp_path, default_params)
    assert "INVENTORY.VALIDATION_SPLIT" in message and "1.5" in message


def test_bad_format_lists_allowed_values(default_params, tmp_path):
    default_params["DATA"]["TRAINING_MODEL_FORMAT"] = "onnx"
    message = error_for(tmp_path, default_params)
    assert "DATA.TRAINING_MODEL_FORMAT" in message and "'keras', 'h5' or 'tf'" in message


def test_unknown_registered_name_lists_known_and_suggests(default_params, tmp_path):
    default_params["MODEL"]["OPTIMIZER_NAME"] = "adamm"
    message = error_for(tmp_path, default_params)
    assert "MODEL.OPTIMIZER_NAME" in message
    assert "Did you mean 'adam'?" in message
    assert "sgd" in message and "rmsprop" in message


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("PIPELINE.TASK_NAME", "clasification"),
        ("MODEL.MODEL_NAME", "xceptoin"),
        ("MODEL.LOSS_NAME", "sparse_categorical_crossentropyy"),
        ("DATA.INVENTORY_DATA_SOURCE", "locall"),
    ],
)
def test_every_registered_kind_is_checked(default_params, tmp_path, key, value):
    group, name = key.split(".")
    default_params[group][name] = value
    message = error_for(tmp_path, default_params)
    assert key in message and "Did you mean" in message


def test_built_in_callbacks_cannot_be_configured_twice(default_params, tmp_path):
    default_params["TRAINING"]["CALLBACKS"] = [{"CALLBACK_NAME": "model_checkpoint"}]
    message = error_for(tmp_path, default_params)
    assert "TRAINING.CALLBACKS.0.CALLBACK_NAME" in message and "built into" in message


def test_class_names_and_labels_of_different_lengths(default_params, tmp_path):
    default_params["PIPELINE"]["TASK_PARAMS"]["CLASS_LABELS"] = [0, 1, 2]
    message = error_for(tmp_path, default_params)
    assert "PIPELINE.TASK_PARAMS" in message and "10 entries" in message and "3" in message


@pytest.mark.parametrize("key", ["CLASS_NAMES", "CLASS_LABELS"])
def test_duplicate_class_names_or_labels(default_params, tmp_path, key):
    values = default_params["PIPELINE"]["TASK_PARAMS"][key]
    values[1] = values[0]
    message = error_for(tmp_path, default_params)
    assert f"{key} repeats" in message


def test_num_classes_must_cover_the_labels(default_params, tmp_path):
    default_params["MODEL"]["MODEL_PARAMS"]["NUM_CLASSES"] = 5
    message = error_for(tmp_path, default_params)
    assert "MODEL.MODEL_PARAMS.NUM_CLASSES" in message and "set NUM_CLASSES to 10" in message


def test_input_shape_the_model_cannot_take(default_params, tmp_path):
    default_params["MODEL"]["MODEL_NAME"] = "xception"
    message = error_for(tmp_path, default_params)  # 16x16 < Xception's 71x71
    assert "MODEL.MODEL_PARAMS.INPUT_SHAPE" in message and "71x71" in message


def test_input_shape_with_bad_channels(default_params, tmp_path):
    default_params["MODEL"]["MODEL_PARAMS"]["INPUT_SHAPE"] = [16, 16, 2]
    assert "MODEL.MODEL_PARAMS.INPUT_SHAPE" in error_for(tmp_path, default_params)


def test_unknown_model_param_is_named(default_params, tmp_path):
    default_params["MODEL"]["MODEL_PARAMS"]["DROPOUTT"] = 0.5
    message = error_for(tmp_path, default_params)
    assert "MODEL.MODEL_PARAMS.DROPOUTT" in message and "Did you mean 'DROPOUT'?" in message


def test_several_problems_in_one_message(default_params, tmp_path):
    default_params["TRAINING"]["BATCH_SIZE"] = 0
    default_params["INVENTORY"]["SEEDS"] = 1
    message = error_for(tmp_path, default_params)
    assert "2 problems" in message
    assert "TRAINING.BATCH_SIZE" in message and "INVENTORY.SEEDS" in message


def test_invalid_yaml_says_where(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("DATA:\n  INVENTORY_DATA_DIR: [unclosed\nMODEL: {}\n")
    with pytest.raises(ConfigError, match=r"not valid YAML at line \d+, column \d+"):
        load_params(path)


def test_a_group_given_twice_is_refused_with_its_lines(tmp_path):
    """Appending a second TRAINING group would silently reset TRAINING.SEED (YAML keeps the
    last): the file is refused, as DVC refuses it, naming both lines."""
    text = (REPO / "params.yaml").read_text() + "TRAINING:\n  NUM_EPOCHS: 1\n"
    first = 1 + text.splitlines().index("TRAINING:")
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_params(path)
    message = str(caught.value)
    last = len(text.splitlines()) - 1
    assert f"line {last}: TRAINING is given twice in one mapping (first at line {first})" in message
    assert "Merge the two into one" in message


def test_a_key_given_twice_is_refused_in_yaml_and_json(tmp_path):
    (tmp_path / "params.yaml").write_text("MODEL:\n  MODEL_NAME: a\n  MODEL_NAME: b\n")
    with pytest.raises(ConfigError, match="line 3: MODEL_NAME is given twice"):
        load_params(tmp_path / "params.yaml")
    (tmp_path / "config.json").write_text('{"MODEL": {"MODEL_NAME": "a", "MODEL_NAME": "b"}}')
    with pytest.raises(ConfigError, match="MODEL_NAME is given twice in one object"):
        load_params(tmp_path / "config.json")


def test_keys_merged_in_by_an_alias_may_be_overridden(tmp_path):
    """YAML's merge key (``<<: *base``) is meant to be overridden: that is no repetition."""
    path = tmp_path / "params.yaml"
    path.write_text("A: &a {X: 1, Y: 2}\nB:\n  <<: *a\n  X: 3\n")
    assert read_params_file(path) == {"A": {"X": 1, "Y": 2}, "B": {"X": 3, "Y": 2}}


def test_params_that_are_not_a_mapping(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_params(path)


def test_missing_params_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_params(tmp_path / "nope.yaml")


def test_seed_resolution():
    assert resolve_seed(7) == 7
    drawn = {resolve_seed(0) for _ in range(5)} | {resolve_seed(-3)}
    assert all(seed > 0 for seed in drawn) and len(drawn) > 1


def test_params_file_that_is_not_utf8(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_bytes("DATA:\n  INVENTORY_DATA_DIR: donn\xe9es\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"is not UTF-8 text \(byte 32 is 0xe9\)"):
        load_params(path)


def test_yaml_alias_bomb_fails_fast_and_small(tmp_path):
    """Nine levels of nine aliases would expand to 9**9 values; it is refused unexpanded."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 9):
        lines.append(f"a{level}: &a{level} [{', '.join([f'*a{level - 1}'] * 9)}]")
    path = tmp_path / "params.yaml"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match="expands to more than 100,000 values"):
        load_params(path)


@pytest.mark.parametrize("group", ["INVENTORY", "TRAINING"])
def test_seeds_must_be_below_2_to_the_32(default_params, tmp_path, group):
    default_params[group]["SEED"] = 2**32
    message = error_for(tmp_path, default_params)
    assert f"{group}.SEED" in message and str(2**32) in message
    default_params[group]["SEED"] = 2**32 - 1
    load_checked_params(write(tmp_path, default_params))


@pytest.mark.parametrize("name", ["../elsewhere", "/tmp/absolute", "", "a/b", ".."])
def test_model_name_is_a_name_not_a_path(default_params, tmp_path, name):
    default_params["DATA"]["TRAINING_MODEL_NAME"] = name
    message = error_for(tmp_path, default_params)
    assert "DATA.TRAINING_MODEL_NAME: must be a plain file or folder name" in message


@pytest.mark.parametrize(
    ("key", "value", "overlapped"),
    [
        ("PREDICTION_OUTPUT_DIR", "data/digits/unlabelled/out", "PREDICTION_DATA_DIR"),
        ("PREDICTION_OUTPUT_DIR", "data", "INVENTORY_DATA_DIR"),
        ("INVENTORY_CSV_DIR", "./data/digits/train/", "INVENTORY_DATA_DIR"),
        ("TRAINING_MODEL_DIR", "data/digits/unlabelled", "PREDICTION_DATA_DIR"),
        ("INVENTORY_CSV_DIR", "predictions", "PREDICTION_OUTPUT_DIR"),
    ],
)
def test_output_folders_may_not_overlap_inputs(default_params, tmp_path, key, value, overlapped):
    default_params["DATA"][key] = value
    message = error_for(tmp_path, default_params)
    assert "overlaps" in message and overlapped in message and "side by side" in message


def test_cache_folder_may_not_be_inside_the_data(default_params, tmp_path):
    default_params["TRAINING"]["CACHE_DIR"] = "data/digits/train/.cache"
    message = error_for(tmp_path, default_params)
    assert "TRAINING.CACHE_DIR" in message and "overlaps INVENTORY_DATA_DIR" in message
    default_params["TRAINING"]["CACHE_DIR"] = "models/digits_cnn/decoded"  # DVC clears it
    message = error_for(tmp_path, default_params)
    assert "TRAINING.CACHE_DIR" in message and "overlaps TRAINING_MODEL_DIR" in message
    # Beside (in) the remote cache folder is where it lives by default: no overlap there.
    default_params["DATA"]["REMOTE_CACHE_DIR"] = str(tmp_path / "kp-cache")
    default_params["TRAINING"]["CACHE_DIR"] = str(tmp_path / "kp-cache" / "decoded")
    assert load_params(write(tmp_path, default_params)).TRAINING.CACHE_DIR.endswith("decoded")
