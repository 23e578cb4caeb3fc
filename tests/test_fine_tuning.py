"""Fine-tuning as practitioners do it (issue 23, items 4 and 5): epochs with the base frozen
(BatchNorm in inference mode), then its top layers unfrozen at a lower learning rate, in one
epoch count, one DVCLive curve and one checkpoint folder, resumable in either phase; and the
frozen epochs trained on the base's cached features, with the results of training through
the frozen base."""

from __future__ import annotations

import copy
import json
import os
import shutil
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
import yaml

from kerapipe.checks import check_params
from kerapipe.config import validate_params
from kerapipe.errors import ConfigError
from kerapipe.models.base import Head, model_builder
from kerapipe.steps.inventory import run_inventory
from kerapipe.steps.train import run_training
from kerapipe.training import fine_tuning
from kerapipe.training.frozen_features import features_kind, split_at_features
from tests.helpers import REPO, context

DEFAULT = yaml.safe_load((REPO / "params.yaml").read_text())
SCHEDULE = {"FROZEN_EPOCHS": 2, "UNFREEZE": 20, "LEARNING_RATE_FACTOR": 0.1}


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory) -> Path:
    """A headless MobileNetV2's weights file (random, standing in for ImageNet's)."""
    path = tmp_path_factory.mktemp("weights") / "mobilenet_v2_notop.weights.h5"
    base = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3))
    base.save_weights(path)
    return path


@pytest.fixture(scope="module")
def few_digits(digits, tmp_path_factory) -> Path:
    """Three classes of the digits, 30 images each: a few steps an epoch."""
    root = tmp_path_factory.mktemp("few") / "train"
    for name in ("zero", "one", "two"):
        (root / name).mkdir(parents=True)
        for image in sorted((digits / "train" / name).iterdir())[:30]:
            shutil.copy(image, root / name / image.name)
    return root


def tuned_params(make_params, pretrained: Path, data: Path, tmp_path: Path, **training) -> dict:
    params, _ = make_params()
    params = copy.deepcopy(params)
    params["DATA"]["REMOTE_CACHE_DIR"] = str(tmp_path / "cache")
    params["DATA"]["INVENTORY_DATA_DIR"] = str(data)
    params["PIPELINE"]["TASK_PARAMS"] = {"CLASS_NAMES": ["zero", "one", "two"]}
    params["DATA"]["PREDICTION_LABELS"] = None
    params["MODEL"]["MODEL_NAME"] = "mobilenet_v2"
    params["MODEL"]["MODEL_PARAMS"] = {"INPUT_SHAPE": [32, 32, 1], "WEIGHTS": str(pretrained)}
    params["TRAINING"].update({"NUM_EPOCHS": 3, "FINE_TUNING": dict(SCHEDULE), **training})
    return params


def train(params: dict, root: Path):
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    ctx = context(validate_params(copy.deepcopy(params)))
    run_inventory(ctx)
    return run_training(ctx)


def base_weights(path: Path) -> list[np.ndarray]:
    """The base's weights in a saved model."""
    model = keras.saving.load_model(path, compile=False)
    return model.get_layer("base").get_weights()


def test_the_schedule_is_checked_at_the_door(make_params, pretrained, few_digits, tmp_path):
    params = tuned_params(make_params, pretrained, few_digits, tmp_path)
    check_params(validate_params(params))
    scratch = copy.deepcopy(params)
    scratch["MODEL"] = {"MODEL_NAME": "simple_cnn", "MODEL_PARAMS": {"INPUT_SHAPE": [16, 16, 1]}}
    with pytest.raises(ConfigError, match="'simple_cnn' has no pretrained base"):
        check_params(validate_params(scratch))
    random = copy.deepcopy(params)
    random["MODEL"]["MODEL_PARAMS"]["WEIGHTS"] = None
    with pytest.raises(ConfigError, match="starts from random weights"):
        check_params(validate_params(random))
    both = copy.deepcopy(params)
    both["MODEL"]["MODEL_PARAMS"]["FREEZE_BASE"] = True
    with pytest.raises(ConfigError, match="keep one of the two"):
        check_params(validate_params(both))
    schedule = copy.deepcopy(params)
    schedule["MODEL"]["OPTIMIZER_PARAMS"]["LEARNING_RATE"] = {
        "SCHEDULE_NAME": "piecewise_constant_decay",
        "SCHEDULE_PARAMS": {"boundaries": [10], "values": [0.1, 0.01]},
    }
    check_params(validate_params(schedule))  # its values are scaled


def test_phases_of_a_run():
    from kerapipe.config import FineTuningParams

    schedule = FineTuningParams(FROZEN_EPOCHS=2)
    assert fine_tuning.phases(schedule, 5, False) == [
        fine_tuning.Phase(0, 2, True), fine_tuning.Phase(2, 5, False)
    ]  # fmt: skip
    assert fine_tuning.phases(schedule, 2, False) == [fine_tuning.Phase(0, 2, True)]
    assert fine_tuning.phases(None, 3, True) == [fine_tuning.Phase(0, 3, True)]
    later = fine_tuning.remaining(fine_tuning.phases(schedule, 5, False), 3)
    assert later == [fine_tuning.Phase(3, 5, False)]
    # the base of a checkpoint after N epochs: frozen at the start, unfrozen after epoch 2
    assert [fine_tuning.base_state(schedule, n) for n in (0, 2, 3)] == [
        (True, False), (True, False), (True, True)]  # fmt: skip
    assert fine_tuning.base_state(FineTuningParams(FROZEN_EPOCHS=0), 3) == (False, False)
    assert fine_tuning.base_state(None, 3) == (False, False)


@pytest.fixture(scope="module")
def tuned(tmp_path_factory, digits, pretrained, few_digits) -> dict[str, Path]:
    """The same 3-epoch fine-tuning run (2 frozen, then the top 20 layers unfrozen) with the
    frozen base's features cached (CACHE: disk) and through the base (CACHE: none), trained
    once per worker: the projects' folders, by CACHE. The cached one stops after its frozen
    epochs and is resumed (LOAD_CHECKPOINT) for the third, as a user raising NUM_EPOCHS."""
    roots = {}
    for cache in ("none", "disk"):
        root = tmp_path_factory.mktemp(f"tuned-{cache}")
        params = yaml.safe_load((REPO / "params.yaml").read_text())
        params["DATA"].update(
            INVENTORY_DATA_DIR=str(few_digits),
            INVENTORY_CSV_DIR=str(root / "inventory"),
            TRAINING_MODEL_DIR=str(root / "models"),
            PREDICTION_DATA_DIR=str(digits / "unlabelled"),
            PREDICTION_LABELS=None,
            PREDICTION_OUTPUT_DIR=str(root / "predictions"),
            REMOTE_CACHE_DIR=str(root / "cache"),
        )
        params["PIPELINE"]["TASK_PARAMS"] = {"CLASS_NAMES": ["zero", "one", "two"]}
        params["MODEL"]["MODEL_NAME"] = "mobilenet_v2"
        params["MODEL"]["MODEL_PARAMS"] = {"INPUT_SHAPE": [32, 32, 1], "WEIGHTS": str(pretrained)}
        params["TRAINING"].update(NUM_EPOCHS=3, FINE_TUNING=dict(SCHEDULE), CACHE=cache)
        cwd = os.getcwd()
        os.chdir(root)  # DVCLive writes dvclive/ in the working directory
        try:
            if cache == "disk":  # the frozen phase, then the resume into the unfrozen one
                train({**params, "TRAINING": {**params["TRAINING"], "NUM_EPOCHS": 2}}, root)
                params["TRAINING"].update(LOAD_CHECKPOINT=True, FORCE=True)
            train(params, root)
        finally:
            os.chdir(cwd)
        roots[cache] = root
    return roots


@pytest.mark.e2e
@pytest.mark.parametrize("cache", ["none", "disk"])
def test_frozen_then_unfrozen_in_one_run(tuned, pretrained, cache):
    """Two frozen epochs leave the base (its BatchNorm statistics included) as pretrained;
    the third, unfrozen, trains the top 20 layers but BatchNorm, at a tenth of the rate:
    in one run, and resumed after the frozen phase."""
    run_dir = tuned[cache] / "models" / "digits_cnn"
    start = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3))
    start.load_weights(pretrained)
    for ours, theirs in zip(
        base_weights(run_dir / "checkpoints" / "epoch_0002.keras"), start.get_weights(), strict=True
    ):
        np.testing.assert_array_equal(ours, theirs)
    final = keras.saving.load_model(run_dir / "checkpoints" / "epoch_0003.keras")
    after = final.get_layer("base")
    changed = [
        layer.name
        for layer, before in zip(after.layers, start.layers, strict=True)
        if not all(map(np.array_equal, layer.get_weights(), before.get_weights()))
    ]
    assert changed and set(changed) <= {layer.name for layer in after.layers[-20:]}
    assert not any(isinstance(after.get_layer(n), keras.layers.BatchNormalization) for n in changed)
    assert after.trainable and not after.get_layer("Conv1").trainable  # loaded as saved
    assert float(final.optimizer.learning_rate) == pytest.approx(1e-4)
    log = pd.read_csv(run_dir / "training_log.csv")
    assert log.epoch.tolist() == [0, 1, 2]  # one log, one curve over both phases
    loss = tuned[cache] / "dvclive" / "plots" / "metrics" / "train" / "loss.tsv"
    assert pd.read_csv(loss, sep="\t").step.tolist() == [0, 1, 2]
    info = json.loads((run_dir / "run_info.json").read_text())
    assert info["settings"]["TRAINING.FINE_TUNING.FROZEN_EPOCHS"] == 2  # in the fingerprint
    assert info["weights_files"]["MODEL.MODEL_PARAMS.WEIGHTS"]["sha256"]


@pytest.mark.e2e
def test_frozen_epochs_on_cached_features_equal_training_through_the_base(tuned):
    """The frozen epochs on the cached features (CACHE: disk) and through the frozen base
    (CACHE: none): their losses and accuracies within 1e-5 (relative), the rounding of the
    base's arithmetic in another order; the head after them within 1e-5 too. The features
    are cached, one entry per image, beside the decoded images."""
    logs = {c: pd.read_csv(tuned[c] / "models" / "digits_cnn" / "training_log.csv") for c in tuned}
    for column in ("loss", "val_loss", "accuracy", "val_accuracy"):
        np.testing.assert_allclose(logs["disk"][column][:2], logs["none"][column][:2], rtol=1e-5)
    heads = [
        keras.saving.load_model(tuned[c] / "models" / "digits_cnn" / "checkpoints" /
                                "epoch_0002.keras").layers[-1].get_weights()
        for c in ("none", "disk")
    ]  # fmt: skip
    for ours, theirs in zip(*heads, strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
    entries = sorted((tuned["disk"] / "cache").rglob("*.u8"))
    assert len([e for e in entries if e.stat().st_size == 1280 * 4 + 8]) == 90  # one per image
    assert not [e for e in sorted((tuned["none"] / "cache").rglob("*.u8"))]  # CACHE: none


def test_features_are_keyed_by_the_input_shape_and_the_weights_loaded(pretrained, tmp_path):
    """Pooled features have one shape at any input size, so the key names the input shape;
    and it names the weights as loaded, so another file, or a random base's other seed,
    computes new features. The same settings share one key."""

    def kind(shape: tuple[int, int, int], weights: Path | None, seed: int = 0) -> str:
        keras.utils.set_random_seed(seed)
        params = {"INPUT_SHAPE": list(shape), "WEIGHTS": str(weights) if weights else None}
        model = {**DEFAULT["MODEL"], "MODEL_NAME": "mobilenet_v2", "MODEL_PARAMS": params}
        validated = validate_params({**DEFAULT, "MODEL": model})
        builder = model_builder(validated)
        builder.resolve_weights(validated.DATA)
        extractor, _ = split_at_features(builder.build(Head(3, "softmax")))
        return features_kind(builder.name, extractor)

    other = tmp_path / "other.weights.h5"
    base = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3))
    base.save_weights(other)
    first = kind((32, 32, 1), pretrained)
    assert kind((32, 32, 1), pretrained, seed=1) == first  # loaded weights: the seed is moot
    assert kind((48, 48, 1), pretrained) != first
    assert kind((32, 32, 3), pretrained) != first
    assert kind((32, 32, 1), other) != first
    assert kind((32, 32, 1), None, seed=1) != kind((32, 32, 1), None, seed=2)


@pytest.mark.e2e
def test_a_run_resumes_in_either_phase(tuned, tmp_path, monkeypatch):
    """The cached run resumed after its two frozen epochs: it unfroze at epoch 3. A copy of
    it, resumed for a fourth epoch, continues in the unfrozen phase with its optimizer state
    (no second unfreezing, no fresh optimizer)."""
    run_info = json.loads((tuned["disk"] / "models" / "digits_cnn" / "run_info.json").read_text())
    assert run_info["resumed_after_epoch"] == 2
    root = Path(shutil.copytree(tuned["disk"], tmp_path / "project"))
    params_text = (root / "params.yaml").read_text().replace(str(tuned["disk"]), str(root))
    params = yaml.safe_load(params_text)
    params["TRAINING"]["NUM_EPOCHS"] = 4
    monkeypatch.chdir(root)  # its dvclive/ continues too
    assert train(params, root).initial_epoch == 3
    run_dir = root / "models" / "digits_cnn"
    third = keras.saving.load_model(run_dir / "checkpoints" / "epoch_0003.keras")
    fourth = keras.saving.load_model(run_dir / "checkpoints" / "epoch_0004.keras")
    steps = -(-len(pd.read_csv(root / "inventory" / "inventory.csv").query("split == 'train'"))
              // 32)  # fmt: skip
    assert int(fourth.optimizer.iterations) == int(third.optimizer.iterations) + steps
    assert float(fourth.optimizer.learning_rate) == pytest.approx(1e-4)
    assert pd.read_csv(run_dir / "training_log.csv").epoch.tolist() == [0, 1, 2, 3]
    curve = pd.read_csv(root / "dvclive" / "plots" / "metrics" / "train" / "loss.tsv", sep="\t")
    assert curve.step.tolist() == [0, 1, 2, 3]


@pytest.mark.e2e
def test_segmentation_backbone_is_fine_tuned_the_same_way(pretrained, tmp_path):
    """A segmentation model on a pretrained backbone (its per-pixel head on the base's last
    feature map): one frozen epoch on the base's cached features (one cache entry per image),
    then the top 10 layers unfrozen, as for classification."""
    from kerapipe.sample_data import write_shapes
    from tests.helpers import train_project
    from tests.helpers_tasks import task_params

    shapes = write_shapes(tmp_path / "shapes", count=16, held_out=2)
    params = task_params("segmentation", tmp_path, {
        "DATA.INVENTORY_DATA_DIR": str(shapes / "train"),
        "DATA.PREDICTION_DATA_DIR": str(shapes / "unlabelled"),
        "DATA.REMOTE_CACHE_DIR": str(tmp_path / "cache"),
        "MODEL.MODEL_NAME": "mobilenet_v2",
        "MODEL.MODEL_PARAMS": {"INPUT_SHAPE": [32, 32, 3], "WEIGHTS": str(pretrained)},
        "TRAINING.NUM_EPOCHS": 2,
        "TRAINING.AUGMENTATIONS": [],
        "TRAINING.FINE_TUNING": {"FROZEN_EPOCHS": 1, "UNFREEZE": 10, "LEARNING_RATE_FACTOR": 0.1},
    })  # fmt: skip
    train_project(tmp_path, params)
    run_dir = tmp_path / "models" / params["DATA"]["TRAINING_MODEL_NAME"]
    start = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3))
    start.load_weights(pretrained)
    frozen = base_weights(run_dir / "checkpoints" / "epoch_0001.keras")
    for ours, theirs in zip(frozen, start.get_weights(), strict=True):
        np.testing.assert_array_equal(ours, theirs)
    after = keras.saving.load_model(run_dir / "checkpoints" / "epoch_0002.keras").get_layer("base")
    changed = [
        layer.name
        for layer, before in zip(after.layers, start.layers, strict=True)
        if not all(map(np.array_equal, layer.get_weights(), before.get_weights()))
    ]
    assert changed and set(changed) <= {layer.name for layer in after.layers[-10:]}
    assert pd.read_csv(run_dir / "training_log.csv").epoch.tolist() == [0, 1]
    sizes = [entry.stat().st_size for entry in (tmp_path / "cache").rglob("*.u8")]
    assert sizes.count(1 * 1 * 1280 * 4 + 8) == 16  # features: one per image, beside its pixels
