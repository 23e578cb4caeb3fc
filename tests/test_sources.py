"""The source layer: every source behaves as the local one does (fsspec's `memory` protocol
stands in for object stores here), remote files are fetched into a bounded cache that two
processes can share, `http` is read-only, and params name sources and settings safely."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
import yaml

from kerapipe.checks import check_params
from kerapipe.config import validate_params
from kerapipe.errors import ConfigError, KerapipeError, SourceError
from kerapipe.registry import SOURCES
from kerapipe.remote_cache import cache_at
from kerapipe.sources import DataSource, get_source
from tests.conftest import PLANTED_SECRET
from tests.helpers import BIN, REPO, context, tool_env


@pytest.fixture(params=["local", "memory"])
def store(request, tmp_path) -> tuple[DataSource, str]:
    """A source and an empty folder on it: a local folder, or one in fsspec's memory."""
    if request.param == "local":
        return get_source("local"), str(tmp_path / "store")
    cache = cache_at(tmp_path / "cache")
    return get_source("memory", cache=cache), f"memory://kp-{uuid.uuid4().hex[:8]}/store"


def fill(source: DataSource, root: str) -> None:
    for name, data in {
        "b/2.png": b"two",
        "a/1.png": b"one",
        "a/deep/3.png": b"three",
        "a/.hidden.png": b"h",
        ".git/x.png": b"x",
        "top.txt": b"top",
    }.items():
        source.write_bytes(f"{root}/{name}", data)


def test_every_source_lists_reads_and_writes_as_the_local_one(store):
    source, root = store
    fill(source, root)
    assert source.files(root) == [f"{root}/{n}" for n in ("a/1.png", "a/deep/3.png", "b/2.png",
                                                          "top.txt")]  # fmt: skip
    assert source.files(root + "/") == source.files(root)
    assert source.subfolders(root) == ["a", "b"]
    assert source.names(root) == ["top.txt"] and source.names(f"{root}/nowhere") == []
    assert source.is_dir(f"{root}/a") and not source.is_dir(f"{root}/top.txt")
    assert source.exists(f"{root}/a/1.png") and not source.exists(f"{root}/a/9.png")
    assert source.read_bytes(f"{root}/a/deep/3.png") == b"three"
    assert source.read_bytes(f"{root}/a/deep/3.png", 2) == b"th"
    source.write_text(f"{root}/t.json", "ünï\n")
    assert source.read_text(f"{root}/t.json") == "ünï\n"
    with pytest.raises(FileNotFoundError):
        source.read_bytes(f"{root}/a/9.png")

    source.remove(f"{root}/top.txt")
    source.move(f"{root}/a", f"{root}/.a.set-aside")
    assert not source.exists(f"{root}/a/1.png")
    assert source.read_bytes(f"{root}/.a.set-aside/deep/3.png") == b"three"
    source.remove_folder(f"{root}/.a.set-aside")
    source.remove_folder(f"{root}/.a.set-aside")  # gone already: nothing to do
    assert source.files(root) == [f"{root}/b/2.png", f"{root}/t.json"]


def test_every_source_copies_files_and_folders_to_and_from_this_machine(store, tmp_path):
    source, root = store
    local = tmp_path / "made"
    (local / "sub").mkdir(parents=True)
    (local / "sub" / "w.bin").write_bytes(b"weights")
    (local / "m.keras").write_bytes(b"model")
    source.upload(local / "m.keras", f"{root}/run/m.keras")
    source.upload(local, f"{root}/run/model.tf")
    assert source.read_bytes(f"{root}/run/model.tf/sub/w.bin") == b"weights"
    source.download(f"{root}/run/model.tf", tmp_path / "back")
    assert (tmp_path / "back" / "sub" / "w.bin").read_bytes() == b"weights"
    [copy] = source.local_paths([f"{root}/run/m.keras"])
    assert Path(copy).read_bytes() == b"model"


def test_listed_paths_keep_the_form_the_params_give(tmp_path):
    source = get_source("memory", cache=cache_at(tmp_path / "cache"))
    folder = f"kp-{uuid.uuid4().hex[:8]}"
    source.write_bytes(f"memory://{folder}/x/a.png", b"a")
    assert source.files(f"memory://{folder}/x") == [f"memory://{folder}/x/a.png"]
    assert source.files(f"/{folder}/x") == [f"/{folder}/x/a.png"]


def test_remote_files_are_fetched_once_then_read_from_the_cache(tmp_path):
    cache = cache_at(tmp_path / "cache")
    root = f"memory://kp-{uuid.uuid4().hex[:8]}"
    source = get_source("memory", cache=cache)
    names = [f"{root}/img_{i:03d}.png" for i in range(40)]  # many: listed, not one by one
    for i, name in enumerate(names):
        source.write_bytes(name, bytes([i]) * 10)
    first = get_source("memory", cache=cache).local_paths(names)
    assert [Path(p).read_bytes() for p in first] == [bytes([i]) * 10 for i in range(40)]
    assert all(Path(p).is_relative_to(tmp_path / "cache" / "files" / "memory") for p in first)
    written = [Path(p).stat().st_mtime_ns for p in first]
    again = get_source("memory", cache=cache).local_paths(names)  # a new source, a new run
    assert again == first and [Path(p).stat().st_mtime_ns for p in again] == written

    source.write_bytes(names[0], b"changed")  # a new version of one object
    changed = get_source("memory", cache=cache).local_paths(names[:1])
    assert changed != first[:1] and Path(changed[0]).read_bytes() == b"changed"
    [missing] = get_source("memory", cache=cache).local_paths([f"{root}/gone.png"])
    assert not Path(missing).exists()


@pytest.mark.parametrize(
    ("name", "kept"),
    [
        ("mnv2.weights.h5", "mnv2.V.weights.h5"),  # Keras reads .weights.h5 and .h5 apart
        ("data.tar.gz", "data.V.tar.gz"),
        ("scan.2024.01.png", "scan.2024.01.V.png"),
        ("README", "README.V"),
        (".env", ".env.V"),
    ],
)
def test_a_cached_file_keeps_the_whole_ending_of_its_name(tmp_path, name, kept):
    cache = cache_at(tmp_path / "cache")
    assert cache.path_for("https", f"host/folder/{name}", "V").name == kept


def fetch_in_another_process(cache: Path, urls: list[str], max_gb: float, wait=False):
    """Start a process that fetches ``urls`` over HTTP into ``cache``, one call each, in
    order; with ``wait`` it holds its lease until its stdin closes."""
    code = textwrap.dedent(
        f"""
        import sys, time
        from kerapipe.remote_cache import cache_at
        from kerapipe.sources import get_source
        source = get_source("http", cache=cache_at({str(cache)!r}, {max_gb!r}))
        for url in {urls!r}:
            source.local_path(url)
            time.sleep(0.01)
        print("fetched", flush=True)
        if {wait!r}:
            sys.stdin.readline()
        """
    )
    return subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=tool_env(),
    )


def serve(root: Path, names: list[str], size: int = 1000) -> None:
    for name in names:
        (root / name).write_bytes(name.encode()[:1] * size)


def cached(cache: Path) -> set[str]:
    """The names of the files in the cache (without their version tag)."""
    return {p.name.split(".")[0] for p in (cache / "files").rglob("*.png")}


def test_the_least_recently_used_files_go_when_the_cache_is_full(http_folder, tmp_path):
    root, url = http_folder
    serve(root, ["c.png", "a.png", "b.png", "d.png"])
    cache = tmp_path / "cache"
    limit = 3500 / 1e9  # three files of 1,000 bytes (and a half)
    earlier = fetch_in_another_process(cache, [f"{url}/{n}.png" for n in "cab"], limit)
    assert earlier.wait(60) == 0, earlier.stderr.read()
    assert cached(cache) == {"a", "b", "c"}
    get_source("http", cache=cache_at(cache, limit)).local_path(f"{url}/d.png")
    assert cached(cache) == {"a", "b", "d"}  # c was used longest ago


def test_files_a_running_process_uses_are_never_evicted(http_folder, tmp_path, caplog):
    root, url = http_folder
    serve(root, ["x.png", "y.png", "z.png", "w.png", "v.png"])
    cache = tmp_path / "cache"
    limit = 2500 / 1e9
    running = fetch_in_another_process(cache, [f"{url}/{n}.png" for n in "xyz"], limit, True)
    try:
        assert running.stdout.readline() == "fetched\n", running.stderr.read()
        source = get_source("http", cache=cache_at(cache, limit))
        source.local_path(f"{url}/w.png")
        assert cached(cache) == {"x", "y", "z", "w"}  # over the limit, all in use
        assert "over DATA.REMOTE_CACHE_MAX_GB" in caplog.text
    finally:
        running.communicate("\n", timeout=60)
    assert running.returncode == 0
    source.local_path(f"{url}/v.png")  # that process ended: its files can go now
    assert cached(cache) == {"w", "v"}
    assert len(list((cache / "leases").iterdir())) == 1  # this process's own


def test_two_processes_fill_the_same_cache_at_once(http_folder, tmp_path):
    root, url = http_folder
    names = [f"img_{i:03d}.png" for i in range(150)]
    for i, name in enumerate(names):
        (root / name).write_bytes(bytes([i % 256]) * (2000 + i))
    cache = tmp_path / "cache"
    urls = [f"{url}/{n}" for n in names]
    both = [fetch_in_another_process(cache, urls, 10.0) for _ in range(2)]
    for process in both:
        assert process.wait(120) == 0, process.stderr.read()
    files = sorted((cache / "files").rglob("*"))
    complete = [p for p in files if p.is_file()]
    assert len(complete) == len(names) and not [p for p in complete if p.name.startswith(".")]
    for path in complete:
        i = int(path.name[4:7])
        assert path.read_bytes() == bytes([i % 256]) * (2000 + i)
    assert not list((cache / "leases").glob("*")), "a finished process left its lease"


def test_http_is_listed_and_read_but_never_written(http_folder, tmp_path):
    root, url = http_folder
    (root / "imgs" / "sub").mkdir(parents=True)
    (root / "imgs" / "a.png").write_bytes(b"a")
    (root / "imgs" / "sub" / "b.png").write_bytes(b"bb")
    (root / "imgs" / ".hidden.png").write_bytes(b"h")
    source = get_source("http", key="DATA.PREDICTION_DATA_DIR", cache=cache_at(tmp_path / "c"))
    assert source.files(f"{url}/imgs") == [f"{url}/imgs/a.png", f"{url}/imgs/sub/b.png"]
    assert source.is_dir(f"{url}/imgs") and source.read_bytes(f"{url}/imgs/sub/b.png") == b"bb"
    with pytest.raises(SourceError, match="the http source is read-only"):
        source.write_text(f"{url}/imgs/predictions.csv", "x")
    many = [f"many/img[{i}].png" for i in range(20)]  # listed, not one by one; no globbing
    for i, name in enumerate(many):
        (root / name).parent.mkdir(exist_ok=True)
        (root / name).write_bytes(bytes([i]) * 3)
    local = source.local_paths(source.files(f"{url}/many"))
    assert sorted(Path(p).read_bytes() for p in local) == [bytes([i]) * 3 for i in range(20)]


def params_with(default_params: dict, **data) -> dict:
    params = yaml.safe_load(yaml.safe_dump(default_params))
    params["DATA"].update(data)
    return params


def test_outputs_on_a_read_only_source_are_refused_before_any_work(default_params):
    params = params_with(
        default_params,
        PREDICTION_DATA_SOURCE="http",
        PREDICTION_DATA_DIR="http://host/images",
        PREDICTION_OUTPUT_DIR="http://host/predictions",
    )
    with pytest.raises(ConfigError) as error:
        check_params(validate_params(params))
    assert "DATA.PREDICTION_OUTPUT_SOURCE: the http source is read-only" in str(error.value)
    params["DATA"].update(PREDICTION_OUTPUT_SOURCE="local", PREDICTION_OUTPUT_DIR="predictions")
    check_params(validate_params(params))


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"INVENTORY_DATA_DIR": "s3://bucket/train"},
         "INVENTORY_DATA_DIR is a s3:// URL but INVENTORY_DATA_SOURCE is 'local'; set "
         "INVENTORY_DATA_SOURCE: s3"),
        ({"INVENTORY_CSV_SOURCE": "s3", "INVENTORY_CSV_DIR": "gcs://bucket/x"},
         "INVENTORY_CSV_DIR is a gcs:// URL but INVENTORY_CSV_SOURCE is 's3'"),
        ({"PREDICTION_DATA_SOURCE": "http", "PREDICTION_DATA_DIR": "data/x"},
         "the http source needs a URL"),
        ({"TRAINING_MODEL_SOURCE": "s3", "TRAINING_MODEL_DIR": "s3://"},
         "a URL such as s3://bucket/prefix"),
        ({"INVENTORY_DATA_SOURCE": "s3", "INVENTORY_DATA_DIR": "s3://AKIA:hunter2@bucket/x"},
         "never in params"),
        ({"INVENTORY_DATA_SOURCE": "s4"}, "unknown data source 's4'. Known data sources: abfs"),
        ({"STORAGE_OPTIONS": {"s4": {}}}, "DATA.STORAGE_OPTIONS.s4: unknown data source"),
        ({"TRAINING_MODEL_SOURCE": "memory", "TRAINING_MODEL_DIR": "memory://b/models",
          "INVENTORY_CSV_SOURCE": "memory", "INVENTORY_CSV_DIR": "memory://b/models/digits_cnn"},
         "INVENTORY_CSV_DIR (b/models/digits_cnn) overlaps TRAINING_MODEL_DIR"),
        ({"REMOTE_CACHE_DIR": "data/digits/train/cache"},
         "params: DATA.REMOTE_CACHE_DIR (/"),
    ],
    ids=["url-on-local", "other-protocol", "http-path", "no-bucket", "password-in-url",
         "unknown-source", "unknown-options-source", "remote-overlap", "cache-in-data"],
)  # fmt: skip
def test_folders_and_sources_that_disagree_are_refused(default_params, data, expected):
    with pytest.raises(ConfigError) as error:
        validate_params(params_with(default_params, **data))
    assert expected in str(error.value).replace("\n", " ")
    assert "hunter2" not in str(error.value)


def test_a_secret_in_storage_options_is_refused_without_being_shown(default_params, tmp_path):
    options = {"s3": {"endpoint_url": "http://127.0.0.1:9000", "secret": PLANTED_SECRET,
                      "client_kwargs": {"region_name": "eu-west-1",
                                        "aws_session_token": PLANTED_SECRET}}}  # fmt: skip
    path = tmp_path / "params.yaml"
    params = params_with(default_params, STORAGE_OPTIONS=options)
    path.write_text(yaml.safe_dump(params))
    result = subprocess.run(
        [str(BIN / "kerapipe"), "validate", "--params", str(path)],
        capture_output=True,
        text=True,
        env=tool_env(),
        cwd=REPO,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    for key in ("DATA.STORAGE_OPTIONS.s3.secret", "s3.client_kwargs.aws_session_token"):
        assert key in result.stderr
    assert "looks like a secret" in result.stderr and "AWS_PROFILE" in result.stderr
    assert "endpoint_url" not in result.stderr  # the settings that are not secrets pass
    assert PLANTED_SECRET not in result.stdout + result.stderr


def test_settings_that_are_not_secrets_are_kept(default_params):
    options = {"s3": {"endpoint_url": "http://127.0.0.1:9000", "profile": "team", "anon": False,
                      "config_kwargs": {"signature_version": "s3v4"},
                      "client_kwargs": {"region_name": "eu-west-1"}},
               "gcs": {"token": "anon"}}  # fmt: skip
    params = validate_params(params_with(default_params, STORAGE_OPTIONS=options))
    assert options == params.DATA.STORAGE_OPTIONS


def test_predictions_go_to_the_images_source_unless_told_otherwise(default_params):
    data = {"PREDICTION_DATA_SOURCE": "memory", "PREDICTION_DATA_DIR": "memory://b/images",
            "PREDICTION_OUTPUT_DIR": "memory://b/predictions"}  # fmt: skip
    params = validate_params(params_with(default_params, **data))
    assert params.DATA.source_name("PREDICTION_OUTPUT_DIR") == "memory"
    data.update(PREDICTION_OUTPUT_SOURCE="local", PREDICTION_OUTPUT_DIR="predictions")
    params = validate_params(params_with(default_params, **data))
    assert params.DATA.source_name("PREDICTION_OUTPUT_DIR") == "local"


def test_every_source_is_a_data_source_and_every_protocol_one_fsspec_knows():
    from fsspec.registry import known_implementations

    from kerapipe.catalog import FSSPEC_SOURCES

    for entry in SOURCES:
        assert issubclass(SOURCES.get(entry.name), DataSource), entry.name
    for name, *_ in FSSPEC_SOURCES:
        assert name in known_implementations or name == "memory", name


def test_an_error_of_a_remote_source_is_one_message_naming_the_param(tmp_path):
    source = get_source("memory", key="DATA.INVENTORY_CSV_DIR", cache=cache_at(tmp_path))
    with pytest.raises(KerapipeError) as error:
        source.read_bytes("memory://nowhere/inventory.csv")
    assert isinstance(error.value, FileNotFoundError)  # still absent to code that checks
    assert str(error.value).startswith("DATA.INVENTORY_CSV_DIR (memory://nowhere/inventory.csv)")
    assert "not found" in str(error.value)


def test_the_local_source_never_imports_fsspec(make_params):
    """The local hot paths (inventory, validate) go nowhere near fsspec."""
    _, path = make_params()
    code = (
        "import sys\nfrom kerapipe.cli import main\n"
        f"assert main(['inventory', '--params', {str(path)!r}]) == 0\n"
        f"assert main(['validate', '--params', {str(path)!r}]) == 0\n"
        "assert 'fsspec' not in sys.modules, 'fsspec was imported'"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]


def test_a_lease_is_taken_once_and_released_at_exit(tmp_path):
    code = (
        "from kerapipe.remote_cache import cache_at\n"
        f"cache = cache_at({str(tmp_path)!r})\n"
        "print(cache.lease() == cache.lease(), cache.scratch('run').is_dir())"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout == "True True\n", result.stderr
    time.sleep(0.01)
    assert not list((tmp_path / "leases").iterdir()) and not list((tmp_path / "work").iterdir())


@pytest.mark.e2e
def test_checkpoints_on_a_remote_source_are_set_aside_and_put_back(
    digits, default_params, tmp_path
):
    """Issue 9's guarantees with the run folder on a remote source: checkpoints of other
    settings are set aside, not deleted, and come back when the new run fails before its
    first epoch; the failure names the image by its remote path."""
    import fsspec

    from kerapipe.errors import DataError
    from kerapipe.steps.inventory import run_inventory
    from kerapipe.steps.train import run_training

    root = f"memory://kp-{uuid.uuid4().hex[:8]}"
    memory = fsspec.filesystem("memory")
    memory.put(str(digits / "train"), f"{root}/train", recursive=True)
    params = params_with(
        default_params,
        INVENTORY_DATA_SOURCE="memory",
        INVENTORY_DATA_DIR=f"{root}/train",
        INVENTORY_CSV_SOURCE="memory",
        INVENTORY_CSV_DIR=f"{root}/inventory",
        TRAINING_MODEL_SOURCE="memory",
        TRAINING_MODEL_DIR=f"{root}/models",
        PREDICTION_DATA_DIR=str(digits / "unlabelled"),
        PREDICTION_OUTPUT_DIR=str(tmp_path / "predictions"),
        REMOTE_CACHE_DIR=str(tmp_path / "cache"),
    )
    params["INVENTORY"]["CHECK_IMAGES"] = "names"
    params["TRAINING"]["NUM_EPOCHS"] = 1
    run_inventory(context(validate_params(params)))
    run_training(context(validate_params(params)))
    checkpoints = f"{root}/models/digits_cnn/checkpoints"
    before = {path: memory.cat(path) for path in memory.find(checkpoints)}
    assert f"{checkpoints.removeprefix('memory:/')}/state.json" in before

    damaged = memory.find(f"{root}/train/three")[5]
    memory.pipe(damaged, memory.cat(damaged)[:60])  # the header reads, the pixels do not
    params["TRAINING"].update(BATCH_SIZE=64, LOAD_CHECKPOINT=True, FORCE=True)
    with pytest.raises(DataError) as error:
        run_training(context(validate_params(params)))
    assert f"memory:/{damaged}" in str(error.value)
    assert {path: memory.cat(path) for path in memory.find(checkpoints)} == before
    assert not memory.exists(f"{root}/models/digits_cnn/.checkpoints.set-aside")
