"""Where data lives. Every ``*_SOURCE`` param names a registered DataSource, and every file of
every stage is read and written through one.

``local`` is this machine's filesystem, used as it is: paths as given, no copies, no fsspec on
its hot paths. The other built-in sources are fsspec protocols (``s3``, ``gcs``, ``az``,
``http``, ``memory``, ...) behind the same interface (FsspecSource, in
kerapipe/remote_sources.py): a ``*_DIR`` on one is a
URL (``s3://bucket/prefix``) or a path on it, and the paths a source lists keep that form.
What TensorFlow, Keras or Pillow must open is fetched first, in parallel, into a bounded
local cache (kerapipe/remote_cache.py), and ``local_paths`` hands back where. Credentials
come from where each library looks for them (the environment, profiles), never from params;
``DATA.STORAGE_OPTIONS`` holds only the non-secret settings (an endpoint, a region).

A new source is one class and one name: subclass DataSource (or
``kerapipe.remote_sources.FsspecSource``, setting its ``protocol``) and register it,
``SOURCES.register("mystore", "mypkg.sources:MyStore")``.
"""

from __future__ import annotations

import os
import posixpath
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from kerapipe import atomic
from kerapipe.registry import SOURCES

if TYPE_CHECKING:
    from kerapipe.config import DataParams
    from kerapipe.remote_cache import RemoteCache

# Environment variables whose values are secrets: never shown in a message, even if a library
# put one in its error text.
SECRET_VARIABLES = (
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AZURE_STORAGE_KEY",
    "AZURE_STORAGE_CONNECTION_STRING",
    "AZURE_STORAGE_SAS_TOKEN",
    "AZURE_CLIENT_SECRET",
    "GOOGLE_OAUTH_ACCESS_TOKEN",
)


class DataSource:
    """The interface every data source implements.

    Paths are strings as the params give them (``*_DIR`` joined with ``/``); a source lists
    paths in the same form. ``key`` is the ``*_DIR`` param the source serves, for messages.
    """

    read_only: ClassVar[bool] = False  # sources that cannot be written (http) say so
    is_local: ClassVar[bool] = False  # paths are local paths: nothing to fetch or upload

    def __init__(
        self,
        name: str = "local",
        options: Mapping[str, Any] | None = None,
        key: str = "",
        cache: RemoteCache | None = None,
    ) -> None:
        self.name = name
        self.options = dict(options or {})
        self.key = key
        self._cache = cache

    @property
    def cache(self) -> RemoteCache:
        """Where remote files are fetched to (the default cache when none was given)."""
        if self._cache is None:
            from kerapipe.remote_cache import cache_at

            self._cache = cache_at(None)
        return self._cache

    # --- listing -------------------------------------------------------------------------

    def is_dir(self, path: str) -> bool:
        raise NotImplementedError

    def exists(self, path: str) -> bool:
        raise NotImplementedError

    def subfolders(self, path: str) -> list[str]:
        """Names of the folders directly inside ``path``, sorted (hidden ones skipped)."""
        raise NotImplementedError

    def files(self, path: str) -> list[str]:
        """Paths of all files below ``path`` (recursive, hidden files skipped), sorted."""
        raise NotImplementedError

    def names(self, path: str) -> list[str]:
        """Names of the files directly inside ``path``, sorted; [] when it does not exist."""
        raise NotImplementedError

    # --- reading -------------------------------------------------------------------------

    def read_bytes(self, path: str, length: int = -1) -> bytes:
        """The file's bytes (its first ``length`` bytes when ``length`` >= 0)."""
        raise NotImplementedError

    def read_text(self, path: str) -> str:
        return self.read_bytes(path).decode("utf-8")

    def local_paths(self, paths: Sequence[str]) -> list[str]:
        """A path TensorFlow, Keras and Pillow can open for each of ``paths``, in order. A
        remote source fetches the files (in parallel, into its cache); one that does not
        exist gets a local path that does not exist either."""
        raise NotImplementedError

    def local_path(self, path: str) -> str:
        return self.local_paths([path])[0]

    def download(self, path: str, local: Path) -> None:
        """Copy the file or folder ``path`` to ``local`` (replaced if there)."""
        raise NotImplementedError

    # --- writing -------------------------------------------------------------------------

    def write_text(self, path: str, text: str) -> None:
        """Write ``text`` so that readers see the old file or the new one, never a part."""
        raise NotImplementedError

    def write_bytes(self, path: str, data: bytes) -> None:
        """Write ``data`` atomically, as ``write_text`` does (e.g. predicted mask images)."""
        raise NotImplementedError

    def upload(self, local: Path, path: str) -> None:
        """Copy the local file or folder ``local`` to ``path``; a file atomically."""
        raise NotImplementedError

    def remove(self, path: str) -> None:
        """Delete one file (e.g. a mask left from an earlier prediction)."""
        raise NotImplementedError

    def remove_folder(self, path: str) -> None:
        """Delete a folder and everything in it, if it exists."""
        raise NotImplementedError

    def move(self, path: str, new: str) -> None:
        """Rename the file or folder ``path`` to ``new`` (which must not exist)."""
        raise NotImplementedError


class LocalSource(DataSource):
    """Files on this machine's filesystem; paths are used as given (relative to the cwd)."""

    is_local = True

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

    def names(self, path: str) -> list[str]:
        try:
            with os.scandir(path) as entries:
                return sorted(e.name for e in entries if e.is_file() and e.name[0] != ".")
        except (FileNotFoundError, NotADirectoryError):
            return []

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

    def local_paths(self, paths: Sequence[str]) -> list[str]:
        return list(paths)

    def download(self, path: str, local: Path) -> None:
        self.upload(Path(path), str(local))

    def write_text(self, path: str, text: str) -> None:
        atomic.write_text(path, text)

    def write_bytes(self, path: str, data: bytes) -> None:
        atomic.write_bytes(path, data)

    def upload(self, local: Path, path: str) -> None:
        if os.path.abspath(local) == os.path.abspath(path):
            return
        with atomic.atomic_path(path) as tmp:
            if Path(local).is_dir():
                shutil.copytree(local, tmp)
            else:
                shutil.copyfile(local, tmp)

    def remove(self, path: str) -> None:
        os.remove(path)

    def remove_folder(self, path: str) -> None:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        elif os.path.lexists(path):
            os.remove(path)

    def move(self, path: str, new: str) -> None:
        os.rename(path, new)


def get_source(
    name: str,
    options: Mapping[str, Any] | None = None,
    key: str = "",
    cache: RemoteCache | None = None,
) -> DataSource:
    """An instance of the data source registered as ``name``, with its storage ``options``,
    serving the param ``key`` (for messages), fetching into ``cache``."""
    return SOURCES.get(name)(name, options, key, cache)


def source_of(data: DataParams, dir_key: str) -> DataSource:
    """The source of the folder param ``DATA.<dir_key>`` (``INVENTORY_DATA_DIR``, ...), with
    its ``DATA.STORAGE_OPTIONS`` and the remote cache of ``DATA.REMOTE_CACHE_*``."""
    from kerapipe.remote_cache import cache_at

    name = data.source_name(dir_key)
    cache = cache_at(data.REMOTE_CACHE_DIR, data.REMOTE_CACHE_MAX_GB)
    return get_source(name, data.STORAGE_OPTIONS.get(name), f"DATA.{dir_key}", cache)


def normpath(path: str) -> str:
    """``posixpath.normpath`` that keeps a URL's ``scheme://``."""
    scheme, sep, rest = path.partition("://")
    return f"{scheme}{sep}{posixpath.normpath(rest)}" if sep else posixpath.normpath(path)


def redact(text: str) -> str:
    """``text`` with the value of every secret environment variable blotted out."""
    for name in SECRET_VARIABLES:
        value = os.environ.get(name)
        if value and len(value) >= 4:
            text = text.replace(value, "***")
    return text
