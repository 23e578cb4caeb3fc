"""Decode once (kerapipe/decoded_cache.py): the decoded image cache on real files, real
TensorFlow and real processes. A later build reads the entries instead of decoding; keys follow
the files' content and the input shape; the size bound evicts; two processes fill one cache at
once; a damaged entry is found and written again; training is the same with or without it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.helpers import REPO, context, tool_env

tf = pytest.importorskip("tensorflow")

import keras  # noqa: E402

from kerapipe.config import load_params  # noqa: E402
from kerapipe.datasets import DatasetOptions, image_dataset  # noqa: E402
from kerapipe.decoded_cache import TRAILER, content_digests, decoded_cache  # noqa: E402
from kerapipe.errors import DataError  # noqa: E402
from kerapipe.registry import register_callback  # noqa: E402
from kerapipe.steps.inventory import run_inventory  # noqa: E402
from kerapipe.steps.train import run_training  # noqa: E402
from kerapipe.training.fit import files_gone  # noqa: E402

SHAPE = (16, 16, 3)
ENTRY = 16 * 16 * 3 + TRAILER


def write_images(folder: Path, count: int, seed: int = 0) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        pixels = rng.integers(0, 256, size=(20 + i % 7, 30, 3), dtype=np.uint8)
        path = folder / f"img_{i:03d}.{'png' if i % 2 else 'jpg'}"
        Image.fromarray(pixels).save(path)
        paths.append(str(path))
    return paths


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[str]:
    return write_images(tmp_path_factory.mktemp("images"), 20)


def batches(paths, cache="none", folder=None, shape=SHAPE, max_gb=1.0, seed=5):
    options = DatasetOptions(cache=cache, cache_dir=str(folder), cache_max_gb=max_gb)
    labels = np.arange(len(paths), dtype=np.int32)
    data = image_dataset(paths, labels, shape, 8, seed, options)
    return [(x.numpy(), y.numpy()) for _ in range(2) for x, y in data]


def same(a, b) -> bool:
    pairs = zip(a, b, strict=False)
    return len(a) == len(b) and all(
        np.array_equal(xa, xb) and np.array_equal(ya, yb) for (xa, ya), (xb, yb) in pairs
    )


def entries(folder: Path) -> list[Path]:
    return sorted((folder / "files").rglob("*.u8"))


def in_process(folder: Path, paths: list[str], max_gb: float = 1.0) -> dict:
    """Build and read the dataset of ``paths`` in a fresh Python process with the cache in
    ``folder``; its counts of entries decoded (filled) and found damaged (rebuilt)."""
    script = textwrap.dedent(
        f"""
        import json, numpy as np
        from kerapipe.datasets import DatasetOptions, image_dataset
        options = DatasetOptions(cache="disk", cache_dir={str(folder)!r}, cache_max_gb={max_gb})
        paths = {paths!r}
        data = image_dataset(paths, np.zeros(len(paths), np.int32), {SHAPE!r}, 8, 1, options)
        for _ in data:
            pass
        store = options.store()
        print("RESULT", json.dumps({{"filled": store.filled, "rebuilt": store.rebuilt}}))
        """
    )
    return _result(_start(script))


def _start(script: str) -> subprocess.Popen:
    env = {**tool_env(), "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def _result(process: subprocess.Popen) -> dict:
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err[-3000:]
    line = [ln for ln in out.splitlines() if ln.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT ") :])


@pytest.mark.e2e  # TensorFlow in processes of their own
def test_a_later_build_reads_the_entries_and_decodes_nothing(images, tmp_path):
    folder = tmp_path / "cache"
    plain = batches(images)
    assert in_process(folder, images) == {"filled": 20, "rebuilt": 0}  # a first run
    assert len(entries(folder)) == 20 and {p.stat().st_size for p in entries(folder)} == {ENTRY}
    assert in_process(folder, images) == {"filled": 0, "rebuilt": 0}  # a later run
    store = decoded_cache(folder, 1.0)
    assert same(batches(images, "disk", folder), plain) and store.filled == 0
    # The pixels come from the entries: a sound entry of other pixels is what training sees.
    (digest,) = content_digests(images[:1])
    (entry,) = store.entry_paths([digest], "image", SHAPE)
    black = np.zeros(SHAPE, np.uint8)
    store.write(entry, black, tf.fingerprint(black.reshape(1, -1))[0].numpy())
    data = image_dataset(images[:1], None, SHAPE, 1, None, DatasetOptions("disk", str(folder)))
    assert not next(iter(data)).numpy().any()
    assert store.filled == 0 and store.rebuilt == 0


def test_digests_are_remembered_until_a_file_changes(tmp_path):
    """A file whose identity (inode, size, times) is unchanged is not hashed again: its
    remembered digest is used, even one planted in the memo. A changed file, even at the
    same size and with its modification time put back, is hashed anew."""
    import sqlite3

    images = write_images(tmp_path / "images", 6)
    store = decoded_cache(tmp_path / "cache", 1.0)
    truth = content_digests(images)
    assert store.digests(images) == truth
    with sqlite3.connect(store.folder / "memo.sqlite") as memo:
        memo.execute("UPDATE digests SET value = 'planted' WHERE path = ?", (images[1],))
    before = os.stat(images[0])
    Image.fromarray(np.full((20, 30, 3), 9, np.uint8)).save(images[0])
    os.utime(images[0], ns=(before.st_atime_ns, before.st_mtime_ns))
    again = store.digests(images)
    assert again[1] == "planted" and again[2:] == truth[2:]
    assert again[0] == content_digests(images[:1])[0] != truth[0]
    # A memo that is not a database is only a shortcut lost: every file is hashed.
    (store.folder / "memo.sqlite").write_bytes(b"not a database")
    assert store.digests(images[2:]) == truth[2:]


def test_the_memo_forgets_the_files_written_longest_ago_past_its_limit(tmp_path):
    """Past ``memo_max_files`` rows the memo keeps the three quarters written last, so it
    stays bounded however many files pass through the cache; a forgotten file is hashed
    again, right, and remembered anew."""
    import sqlite3

    images = write_images(tmp_path / "images", 12)
    store = decoded_cache(tmp_path / "cache", 1.0)
    store.memo_max_files = 8
    truth = content_digests(images)

    def remembered() -> set[str]:
        with closing(sqlite3.connect(store.folder / "memo.sqlite")) as memo:
            return {path for (path,) in memo.execute("SELECT path FROM digests")}

    assert store.digests(images) == truth
    assert remembered() == set(images[6:])  # 12 written, the last 6 kept
    assert store.digests(images[:3]) == truth[:3]  # forgotten: hashed again
    assert remembered() == set(images[9:] + images[:3])
    assert store.digests(images) == truth


def test_header_probes_are_remembered_and_a_limit_still_refuses(tmp_path):
    """Probes come from the memo while a file is unchanged, and match a fresh probe; a
    file the memo knows is still refused when it is over a lower MAX_IMAGE_PIXELS, and a
    file that is not an image is named, memo or not."""
    from kerapipe.image_probe import probe_images

    images = write_images(tmp_path / "images", 4)  # 20x30
    store = decoded_cache(tmp_path / "cache", 1.0)
    assert store.probes(images, None) == probe_images(images, None)
    assert store.probes(images, None) == probe_images(images, None)  # from the memo
    assert [info.problem for info in store.probes(images, 100)] == [
        info.problem for info in probe_images(images, 100)
    ] and all("too large" in info.problem for info in store.probes(images, 100))
    Path(images[0]).write_text("not an image")
    (first, *_) = store.probes(images, None)
    assert first.problem and first == probe_images(images[:1], None)[0]


def test_keys_follow_content_and_input_shape_not_paths(images, tmp_path):
    store = decoded_cache(tmp_path / "cache", 1.0)
    digests = content_digests(images)
    keys = store.entry_paths(digests, "image", SHAPE)
    assert len(set(keys)) == 20 and keys == store.entry_paths(digests, "image", SHAPE)
    assert set(keys).isdisjoint(store.entry_paths(digests, "image", (16, 24, 3)))
    assert set(keys).isdisjoint(store.entry_paths(digests, "mask", SHAPE))
    # A copy of the data elsewhere (a queued experiment's workspace) has the same keys...
    copies = write_images(tmp_path / "copy", 20)
    assert store.entry_paths(content_digests(copies), "image", SHAPE) == keys
    # ... a changed file a new one, the others unchanged.
    Image.fromarray(np.full((20, 30, 3), 7, np.uint8)).save(copies[0])
    changed = store.entry_paths(content_digests(copies), "image", SHAPE)
    assert changed[0] != keys[0] and changed[1:] == keys[1:]
    # A build at another shape, or of the changed data, decodes only what is new.
    folder = tmp_path / "cache"
    batches(images, "disk", folder)
    assert store.filled == 20
    batches(copies, "disk", folder)
    assert store.filled == 21
    assert same(batches(copies, "disk", folder, shape=(8, 8, 3)), batches(copies, shape=(8, 8, 3)))
    assert store.filled == 41 and len(entries(folder)) == 41


@pytest.mark.e2e  # TensorFlow in processes of their own
def test_the_size_bound_evicts_the_least_recently_used(tmp_path):
    """Entries of an ended process go, least recently used first, to make room for a new
    run's; a run whose images alone pass the bound decodes every epoch instead."""
    folder = tmp_path / "cache"
    old = write_images(tmp_path / "old", 20, seed=1)
    new = write_images(tmp_path / "new", 20, seed=2)
    max_gb = 30 * ENTRY / 1e9  # room for 30 entries
    assert in_process(folder, old, max_gb)["filled"] == 20
    first_ten = decoded_cache(folder, 1.0).entry_paths(content_digests(old[:10]), "image", SHAPE)
    assert in_process(folder, old[:10], max_gb)["filled"] == 0  # these ten used again, later
    assert in_process(folder, new, max_gb)["filled"] == 20
    left = entries(folder)
    assert len(left) == 30 and sum(p.stat().st_size for p in left) <= max_gb * 1e9
    assert {str(p) for p in left} >= set(first_ten)  # the ten older ones went
    # 40 images never fit under a bound of 30: no entry is written, the batches stay right.
    store = decoded_cache(folder, max_gb)
    assert same(batches(old + new, "disk", folder, max_gb=max_gb), batches(old + new))
    assert store.filled == 0 and len(entries(folder)) == 30


@pytest.mark.e2e  # TensorFlow in a process of its own
def test_two_processes_filling_one_cache_at_once(tmp_path):
    folder = tmp_path / "cache"
    paths = write_images(tmp_path / "many", 60)
    script = textwrap.dedent(
        f"""
        import json, numpy as np
        from kerapipe.datasets import DatasetOptions, image_dataset
        options = DatasetOptions(cache="disk", cache_dir={str(folder)!r})
        paths = {paths!r}
        data = image_dataset(paths, np.zeros(60, np.int32), {SHAPE!r}, 8, 1, options)
        count = sum(int(x.shape[0]) for x, _ in data)
        print("RESULT", json.dumps({{"filled": options.store().filled, "count": count}}))
        """
    )
    first, second = _start(script), _start(script)
    results = [_result(first), _result(second)]
    assert all(result["count"] == 60 for result in results)
    assert sum(result["filled"] for result in results) >= 60  # both filled, overlapping
    assert len(entries(folder)) == 60 and not list((folder / "files").rglob(".*"))
    store = decoded_cache(folder, 1.0)
    assert same(batches(paths, "disk", folder), batches(paths))  # every entry sound
    assert store.filled == 0 and store.rebuilt == 0


def test_a_damaged_or_partial_entry_is_found_and_written_again(images, tmp_path):
    folder = tmp_path / "cache"
    plain = batches(images)
    store = decoded_cache(folder, 1.0)
    assert same(batches(images, "disk", folder), plain) and store.filled == 20
    keys = store.entry_paths(content_digests(images), "image", SHAPE)
    partial, flipped = Path(keys[3]), Path(keys[8])
    sound = partial.read_bytes(), flipped.read_bytes()
    partial.write_bytes(sound[0][:100])  # a write cut short
    damaged = bytearray(sound[1])
    damaged[17] ^= 0xFF  # one byte changed on disk: same size
    flipped.write_bytes(bytes(damaged))
    assert same(batches(images, "disk", folder), plain)
    assert store.filled == 21  # the partial entry, again before the epochs
    assert store.rebuilt >= 1  # the changed one, found by its fingerprint when read
    assert (partial.read_bytes(), flipped.read_bytes()) == sound
    rebuilt = store.rebuilt
    assert same(batches(images, "disk", folder), plain) and store.rebuilt == rebuilt


def test_an_entry_damaged_during_the_epochs_is_decoded_again(images, tmp_path):
    """The read checks every entry as it reads it, not only before the first epoch: one grown
    or changed after the dataset was built is decoded from its file in that epoch, and
    written back."""
    folder = tmp_path / "cache"
    plain = batches(images)
    options = DatasetOptions(cache="disk", cache_dir=str(folder))
    store = options.store()
    data = image_dataset(images, np.arange(20, dtype=np.int32), SHAPE, 8, 5, options)
    keys = store.entry_paths(content_digests(images), "image", SHAPE)
    grown, changed = Path(keys[2]), Path(keys[11])
    sound = grown.read_bytes(), changed.read_bytes()
    grown.write_bytes(sound[0] + b"x")
    changed.write_bytes(bytes(255 - byte for byte in sound[1][:5]) + sound[1][5:])
    read = [(x.numpy(), y.numpy()) for _ in range(2) for x, y in data]
    assert same(read, plain)
    assert store.rebuilt == 2  # each once: the first epoch wrote them back
    assert (grown.read_bytes(), changed.read_bytes()) == sound


def test_memory_cache_holds_the_images_and_gives_the_same_batches(images, tmp_path):
    plain = batches(images)
    assert same(batches(images, "memory", tmp_path / "cache"), plain)
    assert len(entries(tmp_path / "cache")) == 20  # filled on disk too, for the next run


@pytest.mark.e2e
def test_training_is_the_same_with_and_without_the_cache(make_params, tmp_path):
    """Weights and history of a run without the cache, one that fills it, one that reads it
    and one in memory: identical. The reading run decodes nothing."""
    import keras

    from kerapipe.steps.inventory import run_inventory
    from kerapipe.steps.train import run_training

    folder = tmp_path / "decoded"
    runs = {}
    for name, cache in [("none", "none"), ("fill", "disk"), ("hit", "disk"), ("mem", "memory")]:
        _, path = make_params(
            {
                "TRAINING.NUM_EPOCHS": 2,
                "TRAINING.FORCE": True,
                "TRAINING.CACHE": cache,
                "TRAINING.CACHE_DIR": str(folder),
                "TRAINING.AUGMENTATIONS": [{"AUGMENTATION_NAME": "flip"}],
                "DATA.TRAINING_MODEL_NAME": f"run_{name}",
            }
        )
        params = load_params(path)
        if not runs:
            run_inventory(context(params))
        store = decoded_cache(folder, params.TRAINING.CACHE_MAX_GB)
        filled = store.filled
        result = run_training(context(params))
        model = keras.saving.load_model(result.model_path)
        runs[name] = (model.get_weights(), result.history, store.filled - filled)
    count = len(list((folder / "files").rglob("*.u8")))
    assert runs["fill"][2] == count > 0 and runs["hit"][2] == 0 and runs["mem"][2] == 0
    weights, history, _ = runs["none"]
    for name in ("fill", "hit", "mem"):
        assert runs[name][1] == history, name
        for ours, theirs in zip(runs[name][0], weights, strict=True):
            np.testing.assert_array_equal(ours, theirs)


def test_the_cached_read_has_no_stateful_op_so_the_map_stays_parallel(images, tmp_path):
    """The read of an entry, with the decode and rewrite standing by for a damaged one, holds
    no stateful op: tf.data would run the map on one thread under op determinism."""
    from tensorflow.python.framework import op_def_registry

    from kerapipe.datasets import _routes, readable_images
    from kerapipe.decoding import decode_image
    from kerapipe.file_columns import FileColumn

    routes, turns = _routes(readable_images(images))
    column = FileColumn(
        "image", SHAPE, images, (tf.constant(images), routes, turns),
        lambda path, route, turn: decode_image(path, SHAPE, route, turn),
    )  # fmt: skip
    load, tensors = column.loader(decoded_cache(tmp_path / "cache", 1.0), 1)
    specs = [tf.TensorSpec([], tensor.dtype) for tensor in tensors]
    graph = tf.function(load).get_concrete_function(*specs).graph.as_graph_def()
    ops = {node.op for node in graph.node}
    ops |= {node.op for function in graph.library.function for node in function.node_def}
    assert {"ReadFile", "Fingerprint", "StatelessIf", "PyFuncStateless", "DecodeJpeg"} <= ops
    assert not [op for op in ops if op_def_registry.get(op).is_stateful]


def test_the_memory_cache_is_used_only_when_it_fits():
    from kerapipe.datasets import memory_fits

    assert memory_fits(1) and memory_fits(2**20)
    assert not memory_fits(2**60)  # an exabyte: the disk cache alone, with a warning


@register_callback("delete_after_the_first_epoch")
class DeleteAfterTheFirstEpoch(keras.callbacks.Callback):
    """After the first epoch, delete ``folder``, as `rm -r` in another shell would."""

    def __init__(self, folder: str):
        super().__init__()
        self.folder = folder

    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:
            shutil.rmtree(self.folder)


@pytest.mark.parametrize("deleted", ["cache entries", "images"])
def test_files_deleted_under_a_running_training_stop_it_with_one_clear_error(
    make_params, digits, tmp_path, deleted
):
    """TensorFlow's own error names no file; kerapipe's says which were deleted and how to
    continue, and the finished epoch's checkpoint stays for it."""
    data, cache = tmp_path / "data", tmp_path / "decoded"
    shutil.copytree(digits / "train", data)
    doomed = cache / "files" if deleted == "cache entries" else data / "three"
    callback = {
        "CALLBACK_NAME": "delete_after_the_first_epoch",
        "CALLBACK_PARAMS": {"folder": str(doomed)},
    }
    changes = {
        "TRAINING.NUM_EPOCHS": 2,
        "TRAINING.CACHE": "disk" if deleted == "cache entries" else "none",
        "TRAINING.CACHE_DIR": str(cache),
        "TRAINING.CALLBACKS": [callback],  # kept for the resume, which starts at epoch 1
    }
    _, path = make_params(changes, data_dir=data)
    run_inventory(context(path))
    with pytest.raises(DataError) as error:
        run_training(context(path))
    message = str(error.value)
    if deleted == "cache entries":
        assert f"the decoded image cache {cache} lost" in message
        assert "Delete the cache only while no training reads it" in message
    else:
        assert "file(s) of the inventory disappeared while training read them" in message
        assert str(data / "three") in message
        shutil.copytree(digits / "train" / "three", data / "three")  # put back
    assert "TRAINING.LOAD_CHECKPOINT: true continues" in message
    checkpoints = tmp_path / "models" / "digits_cnn" / "checkpoints"
    assert json.loads((checkpoints / "state.json").read_text())["epoch"] == 1

    _, path = make_params({**changes, "TRAINING.LOAD_CHECKPOINT": True}, data_dir=data)
    result = run_training(context(path))
    assert result.initial_epoch == 1 and len(result.history["loss"]) == 1


def test_a_remote_images_local_copy_deleted_under_a_run_is_named_as_a_copy(tmp_path):
    """A remote source's images are read from their local copies in the remote cache: one
    deleted there is fetched again by the next run, so the message says so."""
    kept = tmp_path / "kept.png"
    kept.write_bytes(b"x")
    named = {str(kept): "s3://team/digits/one/a.png"}
    assert files_gone(named, None) is None
    named[str(tmp_path / "gone.png")] = "s3://team/digits/two/b.png"
    message = str(files_gone(named, None))
    assert "the local copies of 1 file(s) were deleted from the remote cache" in message
    assert "s3://team/digits/two/b.png" in message and "fetched again" in message
