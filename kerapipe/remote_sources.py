"""The remote data sources: fsspec protocols (``s3``, ``gcs``, ``az``, ``http``, ``memory``,
...) behind the DataSource interface (kerapipe/sources.py). What TensorFlow, Keras or Pillow
must open is fetched first, in parallel, into the bounded local remote cache
(kerapipe/remote_cache.py), and ``local_paths`` hands back where. Errors of the storage
clients become one SourceError that says what to check, with no secret in it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar

from kerapipe import atomic
from kerapipe.errors import KerapipeError, SourceError, SourceFileNotFoundError
from kerapipe.sources import DataSource, redact


class FsspecSource(DataSource):
    """A filesystem of fsspec, by protocol: the source's registered name, unless the class
    sets ``protocol``. ``DATA.STORAGE_OPTIONS[name]`` goes to the filesystem as keyword
    arguments (``endpoint_url``, ``client_kwargs``, ``profile``, ...).

    A whole object is written in one request (S3, GCS, Azure Blob, memory), so readers see
    the old file or the new one; sources without that guarantee set ``atomic_writes`` False
    and write under a temporary name, then rename.
    """

    protocol: ClassVar[str | None] = None
    atomic_writes: ClassVar[bool] = True
    workers: ClassVar[int] = 16  # parallel reads where the filesystem is not asynchronous

    @property
    def fs(self):
        """The fsspec filesystem (fsspec keeps one instance per protocol and options)."""
        if getattr(self, "_fs", None) is None:
            import fsspec

            with self._calling("connect", ""):
                self._fs = fsspec.filesystem(self.protocol or self.name, **self.options)
        return self._fs

    # --- paths -----------------------------------------------------------------------------

    def _strip(self, path: str) -> str:
        """The path as the filesystem names it (without the protocol, for most)."""
        return type(self.fs)._strip_protocol(path)

    def _as_given(self, folder: str, found: str) -> str:
        """``found`` (as the filesystem names it) spelt like ``folder`` (as the params give
        it, with or without its protocol), so listed paths keep the user's form."""
        stripped = self._strip(folder).rstrip("/")
        if found.startswith(stripped):
            return folder.rstrip("/") + found[len(stripped) :].rstrip("/")
        return found.rstrip("/")

    # --- listing -------------------------------------------------------------------------

    def is_dir(self, path: str) -> bool:
        with self._calling("look for it", path):
            self.fs.invalidate_cache(self._strip(path))
            return bool(self.fs.isdir(path))

    def exists(self, path: str) -> bool:
        with self._calling("look for it", path):
            self.fs.invalidate_cache(self._strip(path))
            return bool(self.fs.exists(path))

    def subfolders(self, path: str) -> list[str]:
        with self._calling("list", path):
            self.fs.invalidate_cache(self._strip(path))
            entries = self.fs.ls(path, detail=True)
        names = [posixpath.basename(e["name"].rstrip("/")) for e in entries if _is_dir(e)]
        return sorted(n for n in names if n and not n.startswith("."))

    def files(self, path: str) -> list[str]:
        with self._calling("list", path):
            self.fs.invalidate_cache(self._strip(path))
            found = self.fs.find(path)
        paths = [self._as_given(path, p) for p in found]
        top = path.rstrip("/") + "/"
        return sorted(p for p in paths if p.startswith(top) and not _hidden(p[len(top) :]))

    def names(self, path: str) -> list[str]:
        try:
            with self._calling("list", path):
                self.fs.invalidate_cache(self._strip(path))
                entries = self.fs.ls(path, detail=True)
        except FileNotFoundError:
            return []
        names = [posixpath.basename(e["name"]) for e in entries if e.get("type") == "file"]
        return sorted(n for n in names if n and not n.startswith("."))

    # --- reading -------------------------------------------------------------------------

    def read_bytes(self, path: str, length: int = -1) -> bytes:
        with self._calling("read", path):
            if length < 0:
                return self.fs.cat_file(path)
            return self.fs.cat_file(path, start=0, end=length)

    def local_paths(self, paths: Sequence[str]) -> list[str]:
        known = getattr(self, "_fetched", {})
        if all(path in known for path in paths):  # fetched by this source already
            return [known[path] for path in paths]
        stripped = [self._strip(p) for p in paths]
        versions = self._versions(stripped)
        protocol = self.protocol or self.name
        targets = [self.cache.path_for(protocol, p, versions.get(p)) for p in stripped]
        entries = [
            (path, target, bool(versions[path]))
            for path, target in zip(stripped, targets, strict=True)
            if versions.get(path) is not None
        ]
        with self._calling("read", paths[0] if len(paths) == 1 else posixpath.dirname(paths[0])):
            self.cache.fetch(entries, self._download)
        local = [str(target) for target in targets]
        self._fetched = {**known, **dict(zip(paths, local, strict=True))}
        return local

    def _versions(self, paths: Sequence[str]) -> dict[str, str | None]:
        """Each file's version ('' when its listing tells none) from the source's own
        listing, or None when it does not exist: a few files one by one, many by listing
        the folder that holds them all (a handful of requests for thousands of files)."""
        with self._calling("look for the files", paths[0]):
            if len(paths) <= 16:
                found = {}
                for path in paths:
                    try:
                        found[path] = self.fs.info(path)
                    except FileNotFoundError:
                        continue
            else:
                folder = _common_folder(paths)
                self.fs.invalidate_cache(folder)
                found = self.fs.find(folder, detail=True)
        return {p: _version(found[p]) if p in found else None for p in paths}

    def _download(self, paths: Sequence[str]) -> dict[str, bytes | BaseException]:
        """The bytes of each path, or the error that reading it raised; concurrently (an
        asynchronous filesystem gathers the requests itself, others use threads)."""
        if getattr(self.fs, "async_impl", False):  # no glob: a name may hold "[" or "*"
            found = self.fs.cat_ranges(list(paths), None, None, on_error="return")
            return dict(zip(paths, found, strict=True))

        def one(path: str) -> bytes | BaseException:
            try:
                return self.fs.cat_file(path)
            except Exception as err:  # noqa: BLE001 - returned, as the async branch does
                return err

        with ThreadPoolExecutor(min(self.workers, len(paths))) as pool:
            return dict(zip(paths, pool.map(one, paths), strict=True))

    def download(self, path: str, local: Path) -> None:
        local = Path(local)
        atomic._remove(local)
        with self._calling("download", path):
            if self.fs.isdir(path):
                for file in self.fs.find(path):
                    target = local / posixpath.relpath(file, self._strip(path))
                    target.parent.mkdir(parents=True, exist_ok=True)
                    self.fs.get_file(file, str(target))
            else:
                local.parent.mkdir(parents=True, exist_ok=True)
                self.fs.get_file(path, str(local))

    # --- writing -------------------------------------------------------------------------

    def write_text(self, path: str, text: str) -> None:
        self.write_bytes(path, text.encode("utf-8"))

    def write_bytes(self, path: str, data: bytes) -> None:
        self._writable(path)
        with self._calling("write", path):
            if self.atomic_writes:
                self.fs.pipe_file(path, data)
                return
            tmp = _temporary(path)
            self.fs.makedirs(posixpath.dirname(self._strip(path)), exist_ok=True)
            self.fs.pipe_file(tmp, data)
            self.fs.mv(tmp, path)

    def upload(self, local: Path, path: str) -> None:
        self._writable(path)
        local = Path(local)
        with self._calling("upload", path):
            if not local.is_dir():
                self._put(local, path)
                return
            for file in sorted(p for p in local.rglob("*") if p.is_file()):
                self._put(file, f"{path.rstrip('/')}/{file.relative_to(local).as_posix()}")

    def _put(self, local: Path, path: str) -> None:
        if self.atomic_writes:
            self.fs.put_file(str(local), path)
            return
        tmp = _temporary(path)
        self.fs.makedirs(posixpath.dirname(self._strip(path)), exist_ok=True)
        self.fs.put_file(str(local), tmp)
        self.fs.mv(tmp, path)

    def remove(self, path: str) -> None:
        self._writable(path)
        with self._calling("delete", path):
            self.fs.rm_file(path)

    def remove_folder(self, path: str) -> None:
        self._writable(path)
        with self._calling("delete", path):
            self.fs.invalidate_cache(self._strip(path))
            if self.fs.exists(path):
                self.fs.rm(path, recursive=True)

    def move(self, path: str, new: str) -> None:
        self._writable(path)
        with self._calling("move", path):
            self.fs.invalidate_cache(self._strip(path))
            if self.fs.isdir(path):
                for file in self.fs.find(path):
                    relative = posixpath.relpath(file, self._strip(path))
                    self.fs.mv(file, f"{new.rstrip('/')}/{relative}")
            else:
                self.fs.mv(path, new)
            self.fs.invalidate_cache()

    def _writable(self, path: str) -> None:
        if self.read_only:
            raise SourceError(
                f"{self._where(path)}: the {self.name} source is read-only; kerapipe can list "
                f"and read over {self.name}, not write. Put the files kerapipe writes on "
                "another source (local, s3, ...)."
            )

    # --- errors --------------------------------------------------------------------------

    def _where(self, path: str) -> str:
        shown = f" ({path})" if path else ""
        return f"{self.key}{shown}" if self.key else path or f"the {self.name} source"

    @contextlib.contextmanager
    def _calling(self, doing: str, path: str) -> Iterator[None]:
        """Turn what the storage library raises into one message that names the param,
        the path and the fix, with no secret in it (kerapipe's own errors pass through)."""
        try:
            yield
        except KerapipeError:
            raise
        except FileNotFoundError as err:
            raise SourceFileNotFoundError(
                f"{self._where(path)}: cannot {doing}: not found ({_text(err)}). Check the "
                "bucket (or container) and the path exist, and the URL is spelt right."
            ) from None
        except PermissionError as err:
            raise SourceError(
                f"{self._where(path)}: cannot {doing}: access denied ({_text(err)}). "
                f"{self._credentials_hint()}"
            ) from None
        except Exception as err:
            raise SourceError(self._explain(doing, path, err)) from None

    def _explain(self, doing: str, path: str, err: Exception) -> str:
        kind = type(err).__name__
        where = f"{self._where(path)}: cannot {doing}"
        if "Credential" in kind or "NoAuth" in kind:
            return f"{where}: no credentials were found ({_text(err)}). {self._credentials_hint()}"
        if "Connect" in kind or "Timeout" in kind or isinstance(err, ConnectionError):
            return (
                f"{where}: the storage service does not answer ({_text(err)}). Check the "
                "endpoint (for S3: the AWS_ENDPOINT_URL variable, or DATA.STORAGE_OPTIONS."
                f"{self.name}.endpoint_url) and the network."
            )
        if isinstance(err, ValueError | TypeError):
            return (
                f"{where}: {_text(err)}. Check the URL, and DATA.STORAGE_OPTIONS.{self.name} "
                f"(passed to the {self.name} filesystem of fsspec as keyword arguments)."
            )
        return f"{where}: {kind}: {_text(err)}"

    def _credentials_hint(self) -> str:
        if (self.protocol or self.name) in ("s3", "s3a"):
            return (
                "kerapipe uses the standard AWS credentials: the environment "
                "(AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), a profile (AWS_PROFILE, or "
                f"DATA.STORAGE_OPTIONS.{self.name}.profile) in ~/.aws/credentials, or the "
                "machine's role. Never put a key in params."
            )
        return (
            f"kerapipe uses the credentials the {self.name} library finds by itself (its "
            "environment variables, profiles or default login). Never put a key in params."
        )


class HttpSource(FsspecSource):
    """Files served over HTTP(S): listed from the server's folder pages and read, never
    written."""

    read_only = True


class FileServerSource(FsspecSource):
    """A file server (SFTP, FTP, SMB, WebDAV, HDFS): a file is written under a temporary
    name, then renamed, since a server may show a file while it is being written."""

    atomic_writes = False


def _text(err: BaseException, limit: int = 300) -> str:
    """The error's message on one line, shortened, with no secret in it."""
    text = " ".join(str(err).split()) or type(err).__name__
    return redact(text if len(text) <= limit else text[: limit - 3] + "...")


def _common_folder(paths: Sequence[str]) -> str:
    """The deepest folder that holds all ``paths`` (a URL's ``scheme://`` kept)."""
    scheme, sep, _ = paths[0].partition("://")
    rests = [p.partition("://")[2] for p in paths] if sep else list(paths)
    common = posixpath.commonpath(rests) if len(set(rests)) > 1 else posixpath.dirname(rests[0])
    return f"{scheme}{sep}{common}" if sep else common


def _is_dir(entry: dict) -> bool:
    return entry.get("type") == "directory" or str(entry.get("name", "")).endswith("/")


def _hidden(relative: str) -> bool:
    return any(part.startswith(".") for part in relative.split("/"))


def _temporary(path: str) -> str:
    folder, name = posixpath.split(path)
    return posixpath.join(folder, f".{name}.{os.urandom(4).hex()}.tmp")


_VERSION_FIELDS = ("ETag", "etag", "md5Hash", "md5", "content_md5", "LastModified",
                   "last_modified", "Last-Modified", "mtime", "updated", "created")  # fmt: skip


def _version(info: Mapping[str, Any]) -> str:
    """A short hash of what identifies one version of a file in its listing (size, and the
    ETag or checksum or modification time); '' when the listing tells none of them."""
    size = info.get("size")
    tag = next((info[k] for k in _VERSION_FIELDS if info.get(k) not in (None, "")), None)
    if size is None and tag is None:
        return ""
    return hashlib.sha256(f"{size}|{tag}".encode()).hexdigest()[:12]
