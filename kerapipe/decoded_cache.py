"""Decode once: a bounded local cache of decoded, resized uint8 images (and masks) that later
epochs, later runs and every experiment of a ``dvc exp run`` sweep read instead of decoding.

An entry is one file's pixels at one input shape: ``files/<ab>/<key>.u8`` under the cache
folder (``TRAINING.CACHE_DIR``; by default ``decoded/`` in the remote cache folder,
``~/.cache/kerapipe/decoded``, outside every project, so DVC neither tracks nor clears it).
The key hashes the file's content (not its path or time: a queued experiment's copy of the
data hits the same entries), the input shape, what is decoded (image or mask) and
``CACHE_FORMAT``, which names the decode code's version: change it when the pixels change.

An entry holds the raw pixels, then their 8-byte FarmHash fingerprint (``tf.fingerprint``),
so the read in the tf.data pipeline (pure graph ops, no Python per image) knows a damaged
entry from a good one; a damaged one is decoded from its file instead and written again.
Entries missing, or of the wrong size (a partial file), are filled before the first epoch by
a parallel tf.data decode; each is written under a hidden temporary name and renamed into
place, so processes filling one cache at once never see part of an entry (two writing the
same one write the same bytes). A file's content digest and header probe are remembered in
``memo.sqlite`` beside ``files/``, by its path and identity (device, inode, size,
modification and change times, as git's and DVC's indexes do), so a run reads and hashes
only the files changed since one did; past ``MEMO_MAX_FILES`` files, the memo forgets the
quarter written longest ago (they are read again when next used), so it stays bounded too.
Size, leases and eviction are the remote cache's (kerapipe/remote_cache.py): past
``TRAINING.CACHE_MAX_GB`` the least recently used entries go, never one a running process uses.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path

import numpy as np

from kerapipe.image_probe import ImageInfo, probe_images
from kerapipe.remote_cache import GB, RemoteCache, _write, cache_folder

log = logging.getLogger(__name__)

CACHE_FORMAT = "kerapipe-decoded-1"  # part of every key: change it when decoded pixels change
TRAILER = 8  # bytes of the fingerprint after the pixels
SUFFIX = ".u8"
MEMO = "memo.sqlite"  # content digests and header probes by file identity
MEMO_BATCH = 500  # paths per query of the digest memo (SQLite caps a query's parameters)
MEMO_MAX_FILES = 1_000_000  # files a memo table remembers (about 250 MB each) before pruning
_CACHES: dict[tuple[str, int], DecodedCache] = {}


def default_cache_folder(remote_cache_dir: str | None = None) -> Path:
    """``decoded/`` in the remote cache folder (``DATA.REMOTE_CACHE_DIR``, by default
    ``$XDG_CACHE_HOME/kerapipe``): outside the project, shared by its experiments."""
    return cache_folder(remote_cache_dir) / "decoded"


def decoded_cache(folder: str | os.PathLike, max_gb: float) -> DecodedCache:
    """The cache in ``folder``, one object per process (its lease is taken once)."""
    path = Path(os.path.expanduser(str(folder)))
    key = (os.path.abspath(path), int(max_gb * GB))
    if key not in _CACHES:
        _CACHES[key] = DecodedCache(path, key[1])
    return _CACHES[key]


def content_digests(paths: Sequence[str], threads: int = 8) -> list[str]:
    """A BLAKE2 hash of each file's bytes (read in threads: hashing releases the GIL)."""

    def digest(path: str) -> str:
        hashed = hashlib.blake2b()
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                hashed.update(chunk)
        return hashed.hexdigest()[:32]

    with ThreadPoolExecutor(min(threads, max(1, len(paths)))) as pool:
        return list(pool.map(digest, paths, chunksize=64))


class DecodedCache(RemoteCache):
    """Decoded pixels by content and shape; see the module docstring.

    Args:
        folder: the cache folder (created when first used).
        max_bytes: the size the entries may take before the least recently used go.
    """

    description = "decoded image cache"
    limit_key = "TRAINING.CACHE_MAX_GB"

    def __init__(self, folder: Path, max_bytes: int) -> None:
        super().__init__(folder, max_bytes)
        self.memo_max_files = MEMO_MAX_FILES
        self.filled = 0  # entries this process decoded and wrote (before the epochs)
        self.rebuilt = 0  # damaged entries found by the pipeline's read, decoded again
        self.reading: set[str] = set()  # the entries this process's datasets read

    def digests(self, paths: Sequence[str]) -> list[str]:
        """``content_digests(paths)``, reading only the files whose identity changed since
        this cache last hashed them (see the module docstring)."""
        return self._memoized("digests", paths, content_digests)  # type: ignore[return-value]

    def probes(self, paths: Sequence[str], max_pixels: int | None) -> list[ImageInfo]:
        """``probe_images(paths, max_pixels)``, reading only the headers of files whose
        identity changed since this cache last read them; a file refused, or too large for
        ``max_pixels``, is probed again, for its message."""

        def probe(missing: list[str]) -> list[str | None]:
            infos = probe_images(missing, max_pixels)
            return [json.dumps([i.route, i.orientation, *i.size]) if i.ok else None for i in infos]

        infos: list[ImageInfo | None] = [
            None if value is None else _info(path, json.loads(value))
            for path, value in zip(paths, self._memoized("probes", paths, probe), strict=True)
        ]
        again = [i for i, info in enumerate(infos) if info is None or _too_many(info, max_pixels)]
        for i, info in zip(again, probe_images([paths[i] for i in again], max_pixels), strict=True):
            infos[i] = info
        return infos  # type: ignore[return-value]

    def _memoized(
        self,
        table: str,
        paths: Sequence[str],
        compute: Callable[[list[str]], Sequence[str | None]],
    ) -> list[str | None]:
        """``compute(paths)``, taken from the memo's ``table`` for the files whose identity
        is unchanged; new values (not None) are remembered. The memo is only a shortcut:
        when it cannot be read or written, every value is computed."""
        identities = [_identity(path) for path in paths]
        known = self._recall(table, paths, identities)
        missing = [i for i, value in enumerate(known) if value is None]
        if missing:
            fresh = compute([paths[i] for i in missing])
            for i, value in zip(missing, fresh, strict=True):
                known[i] = value
            rows = [(paths[i], identities[i], known[i]) for i in missing]
            self._remember(table, [row for row in rows if row[1] and row[2] is not None])
        return known

    def _memo(self) -> sqlite3.Connection:
        self.folder.mkdir(parents=True, exist_ok=True)
        memo = sqlite3.connect(self.folder / MEMO, timeout=60)
        for table in ("digests", "probes"):
            memo.execute(
                f"CREATE TABLE IF NOT EXISTS {table} "
                "(path TEXT PRIMARY KEY, identity TEXT NOT NULL, value TEXT NOT NULL)"
            )
        return memo

    def _recall(
        self, table: str, paths: Sequence[str], identities: Sequence[str | None]
    ) -> list[str | None]:
        found: dict[str, tuple[str, str]] = {}
        try:
            with closing(self._memo()) as memo:
                for start in range(0, len(paths), MEMO_BATCH):
                    chunk = list(paths[start : start + MEMO_BATCH])
                    marks = ",".join("?" * len(chunk))
                    query = f"SELECT path, identity, value FROM {table} WHERE path IN ({marks})"
                    found.update((p, (i, v)) for p, i, v in memo.execute(query, chunk))
        except (sqlite3.Error, OSError) as err:  # a folder not writable, a full disk
            log.debug("The memo of %s cannot be read: %s", self.folder, err)
        recalled = [found.get(path) for path in paths]
        return [
            row[1] if row and identity and row[0] == identity else None
            for row, identity in zip(recalled, identities, strict=True)
        ]

    def _remember(self, table: str, rows: list[tuple[str, str | None, str | None]]) -> None:
        """Write ``rows``; past ``memo_max_files`` rows, keep the three quarters written last
        (a replaced row takes a new rowid, so rowids follow the order of writing)."""
        try:
            with closing(self._memo()) as memo, memo:
                memo.executemany(f"INSERT OR REPLACE INTO {table} VALUES (?, ?, ?)", rows)
                (count,) = memo.execute(f"SELECT count(*) FROM {table}").fetchone()
                if count > self.memo_max_files:
                    oldest = count - self.memo_max_files * 3 // 4
                    memo.execute(
                        f"DELETE FROM {table} WHERE rowid IN "
                        f"(SELECT rowid FROM {table} ORDER BY rowid LIMIT ?)",
                        (oldest,),
                    )
        except (sqlite3.Error, OSError) as err:  # a folder not writable, a full disk
            log.debug("The memo of %s cannot be written: %s", self.folder, err)

    def entry_paths(self, digests: Sequence[str], kind: str, shape: Sequence[int]) -> list[str]:
        """Where the entry of each file (by its content digest) decoded as ``kind`` at
        ``shape`` lives."""
        tag = f"{CACHE_FORMAT}|{kind}|{list(shape)}|"
        files = str(self.files)
        paths = []
        for digest in digests:  # string joins: pathlib took longer than the hashing
            key = hashlib.sha256((tag + digest).encode()).hexdigest()[:40]
            paths.append(f"{files}{os.sep}{key[:2]}{os.sep}{key}{SUFFIX}")
        return paths

    def prepare(
        self, entries: Sequence[str], entry_bytes: int, fill: Callable[[list[int]], bool]
    ) -> bool:
        """Make every entry present: mark them used, make room, and call ``fill`` with the
        positions of those missing or of the wrong size (it says whether it wrote them all).
        False when they cannot all fit under the limit (with a warning) or were not all
        written: the caller then decodes every epoch."""
        self.lease()
        size = entry_bytes + TRAILER
        needed = size * len(set(entries))
        if needed > self.max_bytes:
            log.warning(
                "The decoded images take %.2f GB, more than TRAINING.CACHE_MAX_GB (%.2f): "
                "decoding them every epoch instead. Raise the limit to cache them.",
                needed / GB,
                self.max_bytes / GB,
            )
            return False
        missing = [i for i, found in enumerate(self.touch(entries)) if found != size]
        if missing:
            self.evict(room=size * len({entries[i] for i in missing}))
            if not fill(missing):
                return False
        self.reading.update(entries)
        return True

    def lost(self) -> list[str]:
        """The entries this process's datasets read that are gone: deleted under a running
        training (eviction never takes them), which stops its epochs."""
        return sorted(entry for entry in self.reading if not os.path.isfile(entry))

    def write(self, entry: str, pixels: np.ndarray, fingerprint: np.ndarray) -> None:
        """Write one entry (pixels, then their fingerprint) atomically."""
        _write(Path(entry), pixels.tobytes() + fingerprint.tobytes())


def _identity(path: str) -> str | None:
    """What changes when a file's content may have: device, inode, size, times (ns); None
    for a file that cannot be read (never found in the memo)."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return f"{stat.st_dev}:{stat.st_ino}:{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ctime_ns}"


def _info(path: str, value: list[int]) -> ImageInfo:
    route, orientation, width, height = value
    return ImageInfo(path, route, orientation, (width, height))


def _too_many(info: ImageInfo, max_pixels: int | None) -> bool:
    return max_pixels is not None and info.size[0] * info.size[1] > max_pixels
