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

    def write_bytes(self, path: str, data: bytes) -> None:
        """Write ``data`` atomically, as ``write_text`` does (e.g. predicted mask images)."""
        raise NotImplementedError

    def remove(self, path: str) -> None:
        """Delete one file (e.g. a mask left from an earlier prediction)."""
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
        top = Path(path).as_posix()  # normalised once, so every path below is too
        for root, dirs, names in os.walk(top):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            prefix = os.path.join(root, "")  # root and one separator: no join per file
            if top == ".":  # as Path would write them: "a/b.png", not "./a/b.png"
                prefix = prefix[2:]
            found += [prefix + n for n in names if not n.startswith(".")]
        if os.sep != "/":  # forward slashes everywhere, as on POSIX (no Path per file: speed)
            found = [p.replace(os.sep, "/") for p in found]
        return sorted(found)

    def read_bytes(self, path: str, length: int = -1) -> bytes:
        if length < 0:
            with open(path, "rb") as handle:
                return handle.read()
        # A few header bytes of many files (the inventory's image check): raw os calls, no
        # file object, are about twice as fast.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        try:
            data = os.read(fd, length)
            while len(data) < length and (more := os.read(fd, length - len(data))):
                data += more
            return data
        finally:
            os.close(fd)

    def write_text(self, path: str, text: str) -> None:
        atomic.write_text(path, text)

    def write_bytes(self, path: str, data: bytes) -> None:
        atomic.write_bytes(path, data)

    def remove(self, path: str) -> None:
        os.remove(path)

    def local_path(self, path: str) -> str:
        return path


def get_source(name: str) -> DataSource:
    """An instance of the data source registered as ``name``."""
    return SOURCES.get(name)()
