"""One registry mechanism for every pluggable kind: models, losses, optimizers, metrics,
callbacks, data sources, tasks and augmentations.

An entry is either the object itself (registered with the decorator) or a ``"module:attr"``
string that is imported on first use. The string form lets kerapipe know every name, for
``kerapipe validate`` and ``kerapipe --help``, without importing TensorFlow.

Other packages add components through entry points, in the group ``kerapipe.<kind>``
(``kerapipe.models``, ``kerapipe.losses``, ...): an entry point's value is already a
``"module:attr"`` string, so a plug-in is registered exactly as kerapipe's own lazy entries are,
when a registry is first asked for its names, without importing the plug-in.

Example:
    >>> @MODELS.register("my_net")
    ... class MyNet(ModelBuilder): ...
    >>> MODELS.get("my_net")
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import importlib.util
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from kerapipe.errors import ConfigError

log = logging.getLogger(__name__)


def suggest(name: str, choices: Iterable[str]) -> str:
    """Return ' Did you mean X?' for the closest choice (ignoring case), or ''."""
    by_lower = {str(choice).lower(): str(choice) for choice in choices}
    close = difflib.get_close_matches(str(name).lower(), list(by_lower), n=1, cutoff=0.6)
    return f" Did you mean {by_lower[close[0]]!r}?" if close else ""


@dataclass
class Entry:
    """A registered name and what it points at."""

    name: str
    target: Any
    summary: str = ""
    requires: tuple[str, ...] = ()  # import names of optional packages it needs
    install: str = ""  # how to install them, when it is not `pip install <names>`

    def missing_packages(self) -> list[str]:
        """The packages in ``requires`` that are not installed (found without importing)."""
        return [name for name in self.requires if importlib.util.find_spec(name) is None]

    def resolve(self) -> Any:
        if isinstance(self.target, str):
            module_name, _, attr = self.target.partition(":")
            self.target = getattr(importlib.import_module(module_name), attr)
        return self.target


class Registry:
    """Names of one kind of component, mapped to the objects that build them.

    ``group`` is the entry-point group other packages register in (None: none).
    """

    def __init__(self, kind: str, group: str | None = None) -> None:
        self.kind = kind
        self.group = group
        self._own: dict[str, Entry] = {}
        self._plugins: set[str] = set()  # names that came from entry points
        self._plugins_loaded = group is None

    @property
    def _entries(self) -> dict[str, Entry]:
        """Every entry: kerapipe's own, then the installed plug-ins' (found on first use)."""
        if not self._plugins_loaded:
            self._plugins_loaded = True
            self._load_plugins()
        return self._own

    def _load_plugins(self) -> None:
        for point in importlib.metadata.entry_points(group=self.group):
            package = point.dist.name if point.dist else "an installed package"
            if point.name in self._own:
                log.warning(
                    "%s registers %s %r, which kerapipe already has; the plug-in's is ignored. "
                    "Rename it in that package's [project.entry-points.%r].",
                    package,
                    self.kind,
                    point.name,
                    self.group,
                )
                continue
            self._own[point.name] = Entry(point.name, point.value, f"from {package}")
            self._plugins.add(point.name)

    def register(
        self,
        name: str,
        target: Any = None,
        *,
        summary: str = "",
        requires: Iterable[str] = (),
        install: str = "",
    ) -> Any:
        """Register ``target`` under ``name``; without ``target``, work as a decorator.

        ``requires`` names optional packages the component needs (``kerapipe validate``
        says which to install when one is missing, with ``install`` when given).
        """
        if target is None:

            def decorator(obj: Any) -> Any:
                self.register(name, obj, summary=summary, requires=requires, install=install)
                return obj

            return decorator
        if name in self._own and name not in self._plugins:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._plugins.discard(name)  # kerapipe's own wins over a plug-in found earlier
        self._own[name] = Entry(name, target, summary, tuple(requires), install)
        return target

    def get(self, name: str) -> Any:
        """Return the object registered as ``name``, importing it if needed."""
        return self.entry(name).resolve()

    def entry(self, name: str) -> Entry:
        try:
            return self._entries[name]
        except KeyError:
            raise ConfigError(self.unknown_message(name)) from None

    def check(self, name: str, key: str) -> None:
        """Raise a ConfigError naming ``key`` if ``name`` is not registered or needs a package
        that is not installed (no imports)."""
        if name not in self._entries:
            raise ConfigError(f"{key}: {self.unknown_message(name)}")
        entry = self._entries[name]
        missing = entry.missing_packages()
        if missing:
            install = entry.install or f"pip install {' '.join(missing)}"
            raise ConfigError(
                f"{key}: {self.kind} {name!r} needs the package(s) {', '.join(missing)}, which "
                f"are not installed. Install them ({install}) or remove {name!r}."
            )

    def unknown_message(self, name: str) -> str:
        return (
            f"unknown {self.kind} {name!r}.{suggest(name, self.names())} "
            f"Known {self.kind}s: {', '.join(self.names())}."
        )

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._entries[name] for name in self.names())


MODELS = Registry("model", "kerapipe.models")
LOSSES = Registry("loss", "kerapipe.losses")
OPTIMIZERS = Registry("optimizer", "kerapipe.optimizers")
METRICS = Registry("metric", "kerapipe.metrics")
CALLBACKS = Registry("callback", "kerapipe.callbacks")
SOURCES = Registry("data source", "kerapipe.sources")
TASKS = Registry("task", "kerapipe.tasks")
SCHEDULES = Registry("learning-rate schedule", "kerapipe.schedules")
AUGMENTATIONS = Registry("augmentation", "kerapipe.augmentations")

ALL: dict[str, Registry] = {
    "models": MODELS,
    "losses": LOSSES,
    "optimizers": OPTIMIZERS,
    "metrics": METRICS,
    "callbacks": CALLBACKS,
    "sources": SOURCES,
    "tasks": TASKS,
    "schedules": SCHEDULES,
    "augmentations": AUGMENTATIONS,
}


# Decorators for plug-ins: ``@register_model("name")`` and so on.
register_model = MODELS.register
register_loss = LOSSES.register
register_optimizer = OPTIMIZERS.register
register_metric = METRICS.register
register_callback = CALLBACKS.register
register_source = SOURCES.register
register_task = TASKS.register
register_schedule = SCHEDULES.register
register_augmentation = AUGMENTATIONS.register


def describe_all() -> str:
    """Every registered name by kind, with a summary (``kerapipe components``); models also
    list their MODEL_PARAMS."""
    lines = []
    for kind, registry in ALL.items():
        lines.append(f"{kind}:")
        for entry in registry:
            lines.append(f"  {entry.name:<40} {entry.summary}".rstrip())
            if registry is MODELS:
                for key, default in MODELS.get(entry.name).describe().items():
                    lines.append(f"      {key} = {default}")
    return "\n".join(lines)
