"""The weights files a model starts from: pretrained weights (``WEIGHTS``) and a previous run's
(``INITIAL_WEIGHTS``). Each is a local path or a URL on a data source kerapipe reads
(``https://``, ``s3://``, ...), fetched through the remote cache (kerapipe/remote_cache.py), with
an optional sha256 that is checked; ``WEIGHTS: imagenet`` is the file Keras publishes for the
backbone, fetched as Keras fetches it (kerapipe/models/applications.py).

The sha256 of every file loaded goes into ``run_info.json`` and into the weights fingerprint
(kerapipe/fingerprints.py): a model trained from other weights is trained again.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kerapipe.errors import ConfigError, ModelError

if TYPE_CHECKING:
    from kerapipe.config import DataParams

SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class WeightsSpec:
    """A weights file the params name: the key, the value as given (a path, a URL or
    ``imagenet``) and the sha256 it must have (None: any)."""

    key: str
    given: str
    sha256: str | None = None

    @property
    def url(self) -> bool:
        return "://" in self.given

    def check(self) -> None:
        """Raise a ConfigError for a malformed sha256, a ModelError for a local file that is
        not there, before any work (a URL is checked when it is fetched)."""
        if self.sha256 is not None and not SHA256.fullmatch(self.sha256.lower()):
            raise ConfigError(
                f"{self.key}_SHA256: must be the 64 hexadecimal digits of a sha256 (as "
                f"`sha256sum FILE` prints them), got {self.sha256!r}."
            )
        if self.url:
            from kerapipe.registry import SOURCES

            SOURCES.check(self.given.split("://", 1)[0], self.key)
        elif self.given != "imagenet" and not os.path.isfile(self.given):
            raise ModelError(
                f"{self.key}: file {self.given!r} not found. Give the path of a weights file, "
                "or its URL on a data source (https://..., s3://...), or set it to null."
            )


@dataclass(frozen=True)
class WeightsFile:
    """A weights file ready to load: the spec it answers, the local file and its sha256."""

    spec: WeightsSpec
    path: str
    sha256: str

    def record(self) -> dict[str, str]:
        """What ``run_info.json`` says of it: where it came from, and its sha256."""
        return {"given": self.spec.given, "sha256": self.sha256}


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_weights(spec: WeightsSpec, data: DataParams | None = None) -> WeightsFile:
    """The local file of ``spec`` (a path, or a URL fetched into the remote cache of
    ``DATA.REMOTE_CACHE_*`` with the source's ``DATA.STORAGE_OPTIONS``; without ``data``,
    the default cache and no options), its sha256 checked."""
    spec.check()
    local = _local_copy(spec, data) if spec.url else spec.given
    return checked(spec, local)


def checked(spec: WeightsSpec, local: str) -> WeightsFile:
    """``local`` (the file of ``spec``) with its sha256, refused when it is not the one the
    params give."""
    digest = file_sha256(local)
    if spec.sha256 is not None and digest != spec.sha256.lower():
        raise ModelError(
            f"{spec.key}: {spec.given} has the sha256 {digest}, not the {spec.sha256} that "
            f"{spec.key}_SHA256 gives: it is another file, or a changed one. Check the URL or "
            "path, or give the sha256 of the file you mean."
        )
    return WeightsFile(spec, str(local), digest)


def _local_copy(spec: WeightsSpec, data: DataParams | None) -> str:
    from kerapipe.remote_cache import cache_at
    from kerapipe.sources import get_source

    protocol = spec.given.split("://", 1)[0]
    if data is None:
        cache, options = cache_at(None), None
    else:
        cache = cache_at(data.REMOTE_CACHE_DIR, data.REMOTE_CACHE_MAX_GB)
        options = data.STORAGE_OPTIONS.get(protocol)
    source = get_source(protocol, options, spec.key, cache)
    local = source.local_path(spec.given)
    if not os.path.isfile(local):
        raise ModelError(
            f"{spec.key}: {spec.given} not found on its source. Check the URL, or set it to null."
        )
    return local
