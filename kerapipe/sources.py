"""Where data lives. Every ``*_SOURCE`` param names a registered DataSource.

A source lists, reads and atomically writes files. ``local`` is the filesystem of this machine;
another source (an object store through fsspec, say) subclasses DataSource and registers its
name with ``@register_source``.
"""

from __future__ import annotations

import os
from pathlib import Path

from kerapipe import atomic
from kerapipe.registry import SOURCES


class DataSource:
    """The interface every data source implements."""

    def is_dir(self, path: str) -> bool:
        raise NotImplementedError

    def exists(self, path: str) -> bool:
        raise NotImplementedError

    def subfolders(self, path: str) -> list[str]:
        """Names of the folders directly inside ``path``, sorted."""
        raise NotImplementedError

    def files(self, path: str) -> list[str]:
        """Paths of all files below ``path`` (recursive, hidden files skipped), sorted."""
        raise NotImplementedError

    def read_bytes(self, path: str, length: int = -1) -> bytes:
        raise NotImplementedError

    def read_text(self, path: str) -> str:
        return self.read_bytes(path).decode("utf-8")

    def write_text(self, path: str, text: str) -> None:
        """Write ``text`` so that readers see the old file or the new one, never a part."""
        raise NotImplementedError

    def local_path(self, path: str) -> str:
        """A path TensorFlow and Keras can open directly."""
        raise NotImplementedError


class LocalSource(DataSource):
    """Files on this machine's filesystem; paths are used as given (relative to the cwd)."""

    def is_dir(self, path: str) -> bool:
        return os.path.isdir(path)

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def subfolders(self, path: str) -> list[str]:
        with os.scandir(path) as entries:
            return sorted(e.name for e in entries if e.is_dir() and not e.name.startswith("."))

    def files(self, path: str) -> list[str]:
        found = []
        for root, dirs, names in os.walk(path):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            found.extend(os.path.join(root, n) for n in names if not n.startswith("."))
        return sorted(Path(p).as_posix() for p in found)

    def read_bytes(self, path: str, length: int = -1) -> bytes:
        with open(path, "rb") as handle:
            return handle.read(length)

    def write_text(self, path: str, text: str) -> None:
        atomic.write_text(path, text)

    def local_path(self, path: str) -> str:
        return path


def get_source(name: str) -> DataSource:
    """An instance of the data source registered as ``name``."""
    return SOURCES.get(name)()
