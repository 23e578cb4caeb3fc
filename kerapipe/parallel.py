"""Run a function over many items (files, mostly) in a small thread pool, or in this
thread when threads would only fight over the GIL, with a progress bar on a terminal."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from typing import Any, TypeVar

_CHUNK = 512  # items per task of the thread pool
_TIMED, _THREADS_FROM = 32, 150e-6  # in_threads(threads=None): items timed, and the bar
_ANY = TypeVar("_ANY")


def in_threads(
    function: Callable[[_ANY], Any],
    items: Sequence[_ANY],
    desc: str = "checking images",
    threads: bool | None = True,
) -> list[Any]:
    """``function(item)`` for every item, in order, with a progress bar on a terminal when
    it takes more than a second (none in CI logs).

    With ``threads``, in a small thread pool: right for work that releases the GIL (Pillow's
    decoding of real images, the latency of remote files). Work that is mostly Python holds
    the GIL, and two threads then take longer than one (header reads: two to three times;
    decoding 16-32 px images: 1.4 times). ``None`` decides from the first items, timed in
    this thread: threads when each took more than ``_THREADS_FROM`` seconds.
    """
    if len(items) <= 8:
        return [function(item) for item in items]
    if threads is None:
        return _timed_then_threads(function, items, desc)
    from tqdm import tqdm

    size = max(8, min(_CHUNK, len(items) // (4 * _workers())))
    chunks = [items[i : i + size] for i in range(0, len(items), size)]
    results: list[Any] = []
    with (
        ThreadPoolExecutor(_workers()) if threads else nullcontext() as pool,
        tqdm(total=len(items), unit="file", desc=desc, disable=None, delay=1) as bar,
    ):
        run = pool.map if pool else map
        for part in run(lambda chunk: [function(item) for item in chunk], chunks):
            results += part
            bar.update(len(part))
    return results


def _timed_then_threads(
    function: Callable[[_ANY], Any], items: Sequence[_ANY], desc: str
) -> list[Any]:
    """``in_threads(threads=None)``: ``_TIMED`` items spread over the list are done first,
    in this thread and timed (after one untimed, which pays for imports and the like); the
    rest in threads if they took more than ``_THREADS_FROM`` seconds each."""
    step = max(1, len(items) // (_TIMED + 1))
    sample = list(range(0, len(items), step))[: _TIMED + 1]
    done = {sample[0]: function(items[sample[0]])}
    start = time.perf_counter()
    done.update((i, function(items[i])) for i in sample[1:])
    threads = (time.perf_counter() - start) / max(1, len(sample) - 1) > _THREADS_FROM
    rest = [i for i in range(len(items)) if i not in done]
    found = in_threads(function, [items[i] for i in rest], desc, threads)
    done.update(zip(rest, found, strict=True))
    return [done[i] for i in range(len(items))]


def _workers() -> int:
    return max(2, min(8, os.cpu_count() or 1))
