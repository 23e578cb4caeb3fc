"""The ``remote`` group: training on images in S3. A local S3-compatible server (moto, on
127.0.0.1, in the parent process) holds the training images; a worker fetches them with the
train stage's own code and times ``fit`` on them against the same images on local disk."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import statistics
import time
from pathlib import Path

from bench_training import fit_rates
from harness import BATCH_SIZE, SEED, Row, context, log, params_for, worker


def worker_remote_fit(spec: dict) -> dict:
    """Images/s through ``fit`` of the train stage's dataset on images in S3 (fetched by the
    train stage's own code into a fresh remote cache, timed) against the same images on
    local disk, in turns, as ``worker_fit`` times them."""
    from kerapipe.backend import steps_per_execution
    from kerapipe.config import validate_params
    from kerapipe.datasets import DatasetOptions
    from kerapipe.reproducibility import seed_everything
    from kerapipe.sources import source_of
    from kerapipe.steps.inventory import scan_data
    from kerapipe.tasks.base import get_task
    from kerapipe.training.inputs import local_files

    seed_everything(SEED)
    tables, contenders = {}, {}
    for name in ("local", "s3"):
        params = validate_params(spec[name])
        task = get_task(params)
        tables[name] = scan_data(context(params))
        if name == "s3":
            start = time.perf_counter()
            source = source_of(params.DATA, "INVENTORY_DATA_DIR")
            tables[name] = local_files(task.layout.file_columns, tables[name], source)
            fetch = time.perf_counter() - start
        options = DatasetOptions.from_params(params.TRAINING)
        data = task.data.dataset(tables[name], BATCH_SIZE, shuffle_seed=SEED, options=options)
        steps = steps_per_execution(params.TRAINING.STEPS_PER_EXECUTION)
        contenders[f"kerapipe_{name}"] = (data, steps)
    count = len(tables["local"])
    assert len(tables["s3"]) == count
    return {"rates": fit_rates(contenders, count, spec["rounds"]), "fetch": fetch, "images": count}


@contextlib.contextmanager
def s3_server():
    """A moto S3 server on 127.0.0.1, this process's AWS settings pointed at it meanwhile
    (the workers inherit them); the environment is restored and the server stopped after."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # a line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    saved = dict(os.environ)
    os.environ.update(
        AWS_ENDPOINT_URL=f"http://{host}:{port}",
        AWS_ACCESS_KEY_ID="benchmarks",
        AWS_SECRET_ACCESS_KEY="benchmarks",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
    )
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        server.stop()


def upload(data: Path) -> None:
    """Every file of the tree into ``s3://bench/images/``."""
    import fsspec

    s3 = fsspec.filesystem("s3", skip_instance_cache=True)
    s3.mkdir("bench")
    files = sorted(p for p in data.rglob("*") if p.is_file())
    start = time.perf_counter()
    s3.put([str(f) for f in files], [f"bench/images/{f.relative_to(data)}" for f in files])
    log(f"uploaded {len(files)} images to the S3 server in {time.perf_counter() - start:.0f}s")


def bench_remote(sizes: dict, data: Path, work: Path) -> list[Row]:
    """Training on images in S3: a local S3-compatible server (moto, on 127.0.0.1) holds
    the training images; the train stage's code fetches them into a fresh remote cache, then
    ``fit`` runs on them in turns with ``fit`` on the same images on local disk."""
    with s3_server():
        upload(data)
        local = params_for(data, work / "remote_local")
        remote = params_for(data, work / "remote_s3")
        cache = work / "remote_cache"
        shutil.rmtree(cache, ignore_errors=True)  # the first fetch is timed: start empty
        remote["DATA"].update(
            INVENTORY_DATA_SOURCE="s3",
            INVENTORY_DATA_DIR="s3://bench/images",
            REMOTE_CACHE_DIR=str(cache),
        )
        spec = {"local": local, "s3": remote, "rounds": sizes["repeats"]}
        result = worker("remote_fit", spec)
    return remote_rows(result)


def remote_rows(result: dict) -> list[Row]:
    """The S3 row (the median of back-to-back ratios) and the first fetch's."""
    rates, count = result["rates"], result["images"]
    for name, values in rates.items():
        log(f"fit {name}: " + ", ".join(f"{v:.0f}" for v in values) + " images/s")
    pairs = zip(rates["kerapipe_s3"], rates["kerapipe_local"], strict=True)
    ratio = statistics.median(s / loc for s, loc in pairs)  # each pair ran back to back
    fetch = result["fetch"]
    return [
        Row(
            "fit throughput, images in S3 (moto on 127.0.0.1), epochs 2+, vs the same on "
            "local disk (images/s)",
            f"{statistics.median(rates['kerapipe_s3']):.0f}",
            f"{statistics.median(rates['kerapipe_local']):.0f}",
            f"{ratio:.2f}x",
            ">= 0.8x",
            ratio >= 0.8,
        ),
        Row(
            f"first fetch of {count:,} images from S3 into the remote cache (s)",
            f"{fetch:.1f}",
            "-",
            "-",
            "-",
            None,
            f"informational: {count / fetch:.0f} images/s, before the first epoch",
        ),
    ]
