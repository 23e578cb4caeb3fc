"""The training input pipeline (kerapipe.datasets) and augmentation, on real files with real
TensorFlow: caching changes nothing, augmentation is seeded, masks keep their labels, bad
params fail clearly. No timing here: speed lives in benchmarks/."""

from __future__ import annotations

import copy
import os

import numpy as np
import pytest
from PIL import Image

from kerapipe.checks import check_params
from kerapipe.config import validate_params
from kerapipe.errors import ConfigError

tf = pytest.importorskip("tensorflow")

from kerapipe.augmentations import augment, build_augmentations  # noqa: E402
from kerapipe.config import AugmentationSpec  # noqa: E402
from kerapipe.datasets import (  # noqa: E402
    DatasetOptions,
    image_dataset,
    prediction_dataset,
    readable_images,
)

SHAPE = (24, 24, 3)
ALL = [
    ("flip", {"MODE": "horizontal_and_vertical"}),
    ("rotation", {"FACTOR": 0.1}),
    ("zoom", {"FACTOR": 0.2, "FILL_MODE": "constant"}),
    ("contrast", {"FACTOR": 0.3}),
]


def specs(items=ALL):
    return [AugmentationSpec(AUGMENTATION_NAME=n, AUGMENTATION_PARAMS=p) for n, p in items]


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> tuple[list[str], np.ndarray]:
    """20 real files: PNG and JPEG, RGB and grayscale, of mixed sizes."""
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    paths = []
    for i in range(20):
        height, width = (int(v) for v in rng.integers(20, 60, size=2))
        pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
        image = Image.fromarray(pixels)
        if i % 3 == 0:
            image = image.convert("L")
        path = folder / f"img_{i:02d}.{'png' if i % 2 else 'jpg'}"
        image.save(path)
        paths.append(str(path))
    return paths, np.arange(20, dtype=np.int32)


def epochs(dataset, count=2):
    """Every batch of ``count`` passes, as numpy."""
    return [[(x.numpy(), y.numpy()) for x, y in dataset] for _ in range(count)]


def assert_same(a, b):
    assert len(a) == len(b)
    for epoch_a, epoch_b in zip(a, b, strict=True):
        assert len(epoch_a) == len(epoch_b)
        for (xa, ya), (xb, yb) in zip(epoch_a, epoch_b, strict=True):
            np.testing.assert_array_equal(ya, yb)
            np.testing.assert_array_equal(xa, xb)


def differ(a, b) -> bool:
    return any(
        not np.array_equal(xa, xb)
        for epoch_a, epoch_b in zip(a, b, strict=True)
        for (xa, _), (xb, _) in zip(epoch_a, epoch_b, strict=True)
    )


def build(images, seed=7, **options):
    paths, labels = images
    return image_dataset(paths, labels, SHAPE, 8, seed, DatasetOptions(**options))


def test_batches_are_float_images_of_the_input_shape(images):
    x, y = next(iter(build(images)))
    assert x.dtype == tf.float32 and x.shape == (8, *SHAPE) and y.dtype == tf.int32
    assert float(tf.reduce_min(x)) >= 0.0 and float(tf.reduce_max(x)) <= 255.0


@pytest.mark.parametrize("augmented", [False, True], ids=["plain", "augmented"])
def test_cache_gives_the_same_batches_as_no_cache(images, tmp_path, augmented):
    augmentations = tuple(build_augmentations(specs())) if augmented else ()
    plain = epochs(build(images, augmentations=augmentations))
    assert_same(plain, epochs(build(images, cache="memory", augmentations=augmentations)))
    on_disk = {"cache": "disk", "cache_dir": str(tmp_path / "cache")}
    assert_same(plain, epochs(build(images, augmentations=augmentations, **on_disk)))
    # The second build reads the decoded cache instead of decoding.
    filled = DatasetOptions(**on_disk).store().filled
    assert filled == 20
    assert_same(plain, epochs(build(images, augmentations=augmentations, **on_disk)))
    assert DatasetOptions(**on_disk).store().filled == filled
    # Memory over disk: the same batches again, shuffled after the in-memory cache.
    in_memory = {**on_disk, "cache": "memory"}
    assert_same(plain, epochs(build(images, augmentations=augmentations, **in_memory)))


def test_unshuffled_dataset_keeps_file_order(images):
    paths, labels = images
    data = image_dataset(paths, labels, SHAPE, 8, None, DatasetOptions(cache="memory"))
    assert np.concatenate([y.numpy() for _, y in data]).tolist() == labels.tolist()


def test_datasets_run_without_the_autotune_thread_and_give_the_same_batches(images):
    """Training, validation and prediction datasets leave tf.data's autotuner off (its
    wake-ups delay the end of a pass); the batches are those it would give with it on."""
    paths, labels = images
    builders = (
        lambda: image_dataset(paths, labels, SHAPE, 8, shuffle_seed=3),
        lambda: prediction_dataset(readable_images(paths), SHAPE, 8),
    )
    options = tf.data.Options()
    options.autotune.enabled = True
    for build_one in builders:
        data, tuned = build_one(), build_one().with_options(options)
        assert data.options().autotune.enabled is False
        got, expected = ([[t.numpy() for t in b] for b in d] for d in (data, tuned))
        assert len(got) == len(expected) == 3
        for ours, theirs in zip(got, expected, strict=True):
            assert all(np.array_equal(a, b) for a, b in zip(ours, theirs, strict=True))


def test_augmentation_is_deterministic_for_a_seed_and_differs_across_seeds(images):
    augmentations = tuple(build_augmentations(specs()))
    first = epochs(build(images, seed=3, augmentations=augmentations))
    assert_same(first, epochs(build(images, seed=3, augmentations=augmentations)))
    assert differ(first, epochs(build(images, seed=4, augmentations=augmentations)))
    assert differ([first[0]], [first[1]])  # each epoch gets new transforms
    assert differ(first, epochs(build(images, seed=3)))  # and it does change the images


def test_augmentation_runs_in_parallel_without_losing_determinism(images):
    augmentations = tuple(build_augmentations(specs()))
    serial = epochs(build(images, augmentations=augmentations, num_parallel_calls=1))
    assert_same(serial, epochs(build(images, augmentations=augmentations)))


@pytest.mark.parametrize("dtype", [tf.int32, tf.uint8])
@pytest.mark.parametrize("rank", [2, 3])
def test_masks_stay_integer_labels_after_geometric_augmentation(dtype, rank):
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 4, size=(32, 32) if rank == 2 else (32, 32, 1))
    mask = tf.constant(labels, dtype=dtype)
    image = tf.constant(rng.uniform(0, 255, size=(32, 32, 3)), dtype=tf.float32)
    augmentations = build_augmentations(specs())
    moved = 0
    for seed in range(6):
        out_image, out_mask = augment(image, tf.constant([seed, 9]), augmentations, mask=mask)
        assert out_mask.dtype == dtype and out_mask.shape == mask.shape
        assert set(np.unique(out_mask.numpy())) <= {0, 1, 2, 3}
        assert out_image.dtype == tf.float32 and out_image.shape == image.shape
        moved += not np.array_equal(out_mask.numpy(), labels)
    assert moved  # the geometric transforms did move the mask


def test_mask_moves_with_the_image_and_contrast_leaves_it_alone():
    labels = np.arange(16 * 16).reshape(16, 16) % 5
    image = tf.constant(np.repeat(labels[..., None], 3, axis=2) * 40.0, dtype=tf.float32)
    mask = tf.constant(labels, dtype=tf.int32)
    flips = build_augmentations(specs([("flip", {"MODE": "horizontal_and_vertical"})]))
    for seed in range(8):
        out_image, out_mask = augment(image, tf.constant([seed, 0]), flips, mask=mask)
        np.testing.assert_array_equal(out_image.numpy()[..., 0] / 40.0, out_mask.numpy())
    contrast = build_augmentations(specs([("contrast", {"FACTOR": 0.5})]))
    out_image, out_mask = augment(image, tf.constant([1, 2]), contrast, mask=mask)
    np.testing.assert_array_equal(out_mask.numpy(), labels)
    assert not np.array_equal(out_image.numpy(), image.numpy())


def test_dataset_options_from_params_and_through_the_task(default_params, images):
    from kerapipe.tasks.base import get_task

    data = copy.deepcopy(default_params)
    data["TRAINING"].update(
        CACHE="memory",
        SHUFFLE_BUFFER=64,
        AUGMENTATIONS=[{"AUGMENTATION_NAME": "flip", "AUGMENTATION_PARAMS": {}}],
    )
    data["MODEL"]["MODEL_PARAMS"]["INPUT_SHAPE"] = list(SHAPE)
    params = validate_params(data)
    options = DatasetOptions.from_params(params.TRAINING, "~/elsewhere")
    assert options.cache == "memory" and options.shuffle_buffer == 64
    assert options.cache_dir == os.path.expanduser("~/elsewhere/decoded")
    assert DatasetOptions.from_params(params.TRAINING).cache_dir.endswith("kerapipe/decoded")
    assert [type(a).__name__ for a in options.augmentations] == ["Flip"]
    assert options.for_evaluation().augmentations == ()
    import pandas as pd

    paths, labels = images
    table = pd.DataFrame({"filepath": paths, "label": labels % 10})
    x, y = next(iter(get_task(params).data.dataset(table, 4, shuffle_seed=1, options=options)))
    assert x.shape == (4, *SHAPE)


@pytest.mark.parametrize(
    ("training", "expected"),
    [
        ({"CACHE": ""}, "TRAINING.CACHE"),
        ({"CACHE": "/tmp/cache"}, "A folder for the cache goes in TRAINING.CACHE_DIR"),
        ({"CACHE_DIR": "s3://bucket/cache"}, "TRAINING.CACHE_DIR: must be a local folder"),
        ({"CACHE_MAX_GB": 0}, "TRAINING.CACHE_MAX_GB"),
        ({"SHUFFLE_BUFFER": 0}, "TRAINING.SHUFFLE_BUFFER"),
        ({"NUM_PARALLEL_CALLS": 0}, "TRAINING.NUM_PARALLEL_CALLS"),
        ({"STEPS_PER_EXECUTION": 0}, "TRAINING.STEPS_PER_EXECUTION"),
        ({"STEPS_PER_EXECUTION": "many"}, "TRAINING.STEPS_PER_EXECUTION"),
        (
            {"DISTRIBUTION": "mirrored", "STEPS_PER_EXECUTION": 8},
            "set STEPS_PER_EXECUTION: auto or 1",
        ),
        (
            {"AUGMENTATIONS": [{"AUGMENTATION_NAME": "flipp"}]},
            "TRAINING.AUGMENTATIONS.0.AUGMENTATION_NAME: unknown augmentation 'flipp'. "
            "Did you mean 'flip'?",
        ),
        (
            {
                "AUGMENTATIONS": [
                    {"AUGMENTATION_NAME": "flip"},
                    {"AUGMENTATION_NAME": "rotation", "AUGMENTATION_PARAMS": {"FACTOR": 2}},
                ]
            },
            "TRAINING.AUGMENTATIONS.1.AUGMENTATION_PARAMS.FACTOR",
        ),
        (
            {"AUGMENTATIONS": [{"AUGMENTATION_NAME": "rotation"}]},
            "TRAINING.AUGMENTATIONS.0.AUGMENTATION_PARAMS.FACTOR: required key is missing",
        ),
        (
            {
                "AUGMENTATIONS": [
                    {"AUGMENTATION_NAME": "flip", "AUGMENTATION_PARAMS": {"MODE": "sideways"}}
                ]
            },
            "'horizontal', 'vertical' or 'horizontal_and_vertical'",
        ),
        (
            {
                "AUGMENTATIONS": [
                    {"AUGMENTATION_NAME": "zoom", "AUGMENTATION_PARAMS": {"FACTR": 0.1}}
                ]
            },
            "FACTR: unknown key. Did you mean 'FACTOR'?",
        ),
        ({"AUGMENTATIONS": [{"NAME": "flip"}]}, "TRAINING.AUGMENTATIONS.0.NAME: unknown key"),
    ],
)
def test_bad_input_params_give_clear_config_errors(default_params, training, expected):
    data = copy.deepcopy(default_params)
    data["TRAINING"].update(training)
    with pytest.raises(ConfigError) as err:
        check_params(validate_params(data))
    assert expected in str(err.value)


def test_cache_none_and_null_mean_no_cache(default_params):
    for value in ("none", "None", None):
        data = copy.deepcopy(default_params)
        data["TRAINING"]["CACHE"] = value
        assert validate_params(data).TRAINING.CACHE == "none"


class _Terminal:
    """A stand-in for stderr on a terminal: collects what tqdm writes."""

    def __init__(self):
        self.text = ""

    def isatty(self):
        return True

    def write(self, text):
        self.text += text

    def flush(self):
        pass


def test_checking_many_files_shows_progress_only_on_a_terminal(monkeypatch, capsys):
    import time

    from kerapipe.parallel import in_threads

    paths = [f"f{i}.png" for i in range(3000)]

    def slow_check(path):
        time.sleep(0.001)  # long enough for the bar's one-second delay
        return path.upper()

    assert in_threads(slow_check, paths) == [p.upper() for p in paths]  # in order
    assert capsys.readouterr().err == ""  # not a TTY (as in CI): quiet
    terminal = _Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    in_threads(slow_check, paths)
    assert "checking images" in terminal.text and "3000/3000" in terminal.text


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_large_jpeg_is_decoded_at_a_reduced_scale_close_to_a_full_decode(tmp_path, channels):
    """Big JPEGs decode at 1/2, 1/4 or 1/8 scale in libjpeg: faster, and nearly the same."""
    import io

    from PIL import Image

    from kerapipe.decoding import decode_image
    from kerapipe.image_probe import JPEG, probe_image

    ramp = np.linspace(0, 255, 400)
    pixels = np.stack(
        [
            np.add.outer(ramp, ramp) / 2,
            np.add.outer(ramp[::-1], ramp) / 2,
            np.outer(ramp, np.ones(400)),
        ],
        -1,
    ).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=95)
    path = tmp_path / "big.jpg"
    path.write_bytes(buffer.getvalue())
    assert probe_image(str(path)).route == JPEG
    fast = decode_image(tf.constant(str(path)), (48, 48, channels), JPEG).numpy().astype(float)
    colours = min(channels, 3)
    full = tf.image.resize(
        tf.io.decode_image(buffer.getvalue(), channels=colours, expand_animations=False), (48, 48)
    ).numpy()
    assert fast.shape == (48, 48, channels)
    assert np.abs(fast[..., :colours] - full).mean() < 3.0  # grey levels, of 255
    if channels == 4:
        assert (fast[..., 3] == 255).all()  # JPEG has no alpha: opaque
