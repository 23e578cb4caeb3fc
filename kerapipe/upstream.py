"""The private APIs of other packages that kerapipe uses, all in this one module, each with
why no public API does the job. ``tests/test_upstream.py`` fails when one of them changes
upstream, before a user meets the change.

- Keras: ``keras.src.utils.file_utils.get_file``, the download function every
  ``keras.applications`` constructor calls, and ``keras.src.backend.config.keras_home``, the
  folder it keeps files in (``$KERAS_HOME``, else ``~/.keras``). The first is wrapped while a
  backbone is built with ``weights="imagenet"``, to learn which file Keras fetched (its URL,
  name and hash), so the file's sha256 can be recorded and an offline failure can name the
  URL and where to put the file. Keras fetches the file itself, as it always does.
- DVCLive: ``Live._studio_events_to_skip``, the events DVCLive will not send to DVC Studio.
  DVCLive builds each Studio update before it asks whether to send it; kerapipe skips
  building it when it would be dropped. And ``Live._init_dvc``, where DVCLive looks for the
  DVC repository: outside one it runs ``dvc init`` in the enclosing git repository (staging
  DVC's files in the user's git index) and, in a repository with no commit, fails after the
  first epoch; kerapipe skips it there (``LiveInRepositoryOnly``).
- JAX: ``jax._src.distributed.global_state.client.wait_at_barrier``, the coordination
  service's barrier with a timeout of our choosing: the processes of a multi-process run
  wait for process 0's saving and evaluation, which can outlast JAX's own shutdown wait.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from dvclive import Live


@dataclass(frozen=True)
class KerasDownload:
    """One call of Keras' ``get_file``: what it was asked for, where it keeps the file
    (``target``: ``$KERAS_HOME/<cache_subdir>/<fname>``), and the local path it gave (None
    when it failed)."""

    fname: str
    origin: str
    file_hash: str | None
    target: str
    path: str | None = None


@contextlib.contextmanager
def keras_downloads() -> Iterator[list[KerasDownload]]:
    """Record every file Keras' applications download (or find in its cache) inside the
    block, in order; Keras' own ``get_file`` does the work, unchanged."""
    from keras.src.backend.config import keras_home
    from keras.src.utils import file_utils

    original = file_utils.get_file
    calls: list[KerasDownload] = []

    def recording(fname=None, origin=None, *args: Any, **kwargs: Any) -> str:
        folder = os.path.expanduser(kwargs.get("cache_dir") or keras_home())
        target = os.path.join(folder, kwargs.get("cache_subdir", "datasets"), str(fname))
        call = KerasDownload(str(fname), str(origin), kwargs.get("file_hash"), target)
        calls.append(call)
        path = original(fname, origin, *args, **kwargs)
        calls[-1] = KerasDownload(call.fname, call.origin, call.file_hash, target, path)
        return path

    file_utils.get_file = recording
    try:
        yield calls
    finally:
        file_utils.get_file = original


class LiveInRepositoryOnly(Live):
    """DVCLive's logger, linked to the DVC repository and its git history only where there
    is one with a commit: elsewhere (``kerapipe run`` in a plain folder, or in a git
    repository DVC never initialised) it only writes its folder, and never touches git."""

    def _init_dvc(self) -> None:
        if os.getenv("DVC_ROOT") or dvc_repository_with_history():
            super()._init_dvc()
            return
        self._dvc_file = self._init_dvc_file()
        self._save_dvc_exp = False


def dvc_repository_with_history(folder: str = ".") -> bool:
    """Whether ``folder`` is inside a DVC repository whose git repository (if any) has a
    commit."""
    from dvc.exceptions import NotDvcRepoError
    from dvc.repo import Repo
    from scmrepo.exceptions import SCMError
    from scmrepo.git import Git

    try:
        root = Repo.find_root(folder)
    except NotDvcRepoError:
        return False
    try:
        with Git(root) as git:
            return not git.no_commits
    except SCMError:  # no git: DVC with `--no-scm`
        return True


def studio_drops_data(live: Any) -> bool:
    """Whether DVCLive will drop, unsent, the Studio update of each step (no Studio set up)."""
    return "data" in getattr(live, "_studio_events_to_skip", ())


def jax_barrier(name: str, timeout_ms: int) -> None:
    """Wait until every process of a multi-process JAX run reaches the barrier ``name``."""
    from jax._src import distributed

    distributed.global_state.client.wait_at_barrier(name, timeout_in_ms=timeout_ms)
