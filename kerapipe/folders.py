"""Folders of a training run on their data source: the local folder Keras works in beside
each, and folders set aside rather than deleted.

Keras reads and writes local files only. A WorkingCopy pairs a folder on a source with a
local one. For the local source they are one folder and nothing is ever copied. For a remote
source the local folder is private scratch space (kerapipe/remote_cache.py): a file is
uploaded by name once it is complete, and downloaded when the run needs it (a checkpoint to
resume from); what must be written last (``state.json``, ``run_info.json``) is written last.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
from pathlib import Path

from kerapipe.sources import DataSource, LocalSource


def join(folder: str, name: str) -> str:
    """``folder/name`` as the source names it (forward slashes, URLs kept)."""
    return f"{folder.rstrip('/')}/{name}" if name else folder


class WorkingCopy:
    """The folder ``path`` on ``source``, and ``local``, where its files are made and read.

    Args:
        source: the data source of the folder.
        path: the folder, as the source names it.
        local: the local folder; ``path`` itself for the local source.
    """

    def __init__(self, source: DataSource, path: str, local: Path) -> None:
        self.source = source
        self.path = path
        self.local = Path(local)

    @classmethod
    def of(cls, source: DataSource, path: str, scratch: str) -> WorkingCopy:
        """The folder itself for the local source; else ``path`` beside a fresh scratch
        folder named ``scratch``."""
        if source.is_local:
            return cls(source, path, Path(path))
        return cls(source, path, source.cache.scratch(scratch))

    @property
    def remote(self) -> bool:
        """Whether files must cross between the local folder and the source."""
        return not self.source.is_local

    def sub(self, name: str) -> WorkingCopy:
        return WorkingCopy(self.source, join(self.path, name), self.local / name)

    def on_source(self, name: str = "") -> str:
        return join(self.path, name)

    def local_file(self, name: str) -> Path:
        return self.local / name

    def exists(self, name: str = "") -> bool:
        return self.source.exists(self.on_source(name))

    def names(self) -> list[str]:
        """The files directly inside the folder on the source, sorted."""
        return self.source.names(self.path)

    def read_text(self, name: str) -> str:
        return self.source.read_text(self.on_source(name))

    def write_text(self, name: str, text: str) -> None:
        """Write a file on the source, atomically."""
        self.source.write_text(self.on_source(name), text)

    def upload(self, name: str) -> None:
        """Copy the local file (or folder) ``name`` to the source; nothing for local."""
        if self.remote:
            self.source.upload(self.local_file(name), self.on_source(name))

    def download(self, name: str) -> Path:
        """The local copy of ``name``, fetched from the source first when remote."""
        if self.remote:
            self.source.download(self.on_source(name), self.local_file(name))
        return self.local_file(name)

    def remove(self, name: str) -> None:
        """Delete ``name`` on the source and its local copy (if any)."""
        if self.remote:
            self.local_file(name).unlink(missing_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.source.remove(self.on_source(name))


class SetAside:
    """A folder moved out of the way instead of deleted, until what replaces it is safe.

    ``move()`` renames ``folder`` to a hidden sibling; ``restore()`` puts it back (dropping
    whatever took its place); ``discard()`` deletes it once the replacement is good. A crash
    in between leaves the sibling, for the next run to restore or discard. On an object store
    a rename copies each object, then deletes it.
    """

    def __init__(self, folder: str | os.PathLike, source: DataSource | None = None) -> None:
        self.source = source or LocalSource()
        self.folder = os.fspath(folder).rstrip("/")
        head, name = posixpath.split(self.folder.replace(os.sep, "/"))
        self.path = join(head, f".{name}.set-aside") if head else f".{name}.set-aside"

    def holds_something(self) -> bool:
        return self.source.exists(self.path)

    def move(self) -> None:
        self.source.remove_folder(self.path)
        if self.source.exists(self.folder):
            self.source.move(self.folder, self.path)

    def restore(self) -> None:
        if self.source.exists(self.path):
            self.source.remove_folder(self.folder)
            self.source.move(self.path, self.folder)

    def discard(self) -> None:
        self.source.remove_folder(self.path)
