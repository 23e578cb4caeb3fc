"""The rule that keeps data safe from DVC's clean-up: a folder kerapipe writes (and DVC empties
before a stage runs) may not be, hold or lie inside a folder it reads, or another it writes.
Folders are compared as ``source:path`` strings, normalised by ``on_source``."""

from __future__ import annotations

import os
import posixpath


def on_source(source: str, path: str) -> str:
    """``source:path`` normalised, so two spellings of one folder compare equal."""
    if "://" in path:
        scheme, rest = path.split("://", 1)
        return f"{scheme}:{posixpath.normpath(rest)}"
    if source == "local":
        path = os.path.abspath(path)
    return f"{source}:{posixpath.normpath(path.replace(os.sep, '/'))}"


def overlapping_folders(inputs: dict[str, str], outputs: dict[str, str]) -> list[str]:
    """Problems where an output folder is, holds or lies inside an input folder, or another
    output folder: writing (or DVC's clean-up of outputs) there would touch data."""

    def nested(a: str, b: str) -> bool:
        return a == b or a.startswith(b.rstrip("/") + "/") or b.startswith(a.rstrip("/") + "/")

    problems = []
    outs = list(outputs.items())
    for i, (out_key, out) in enumerate(outs):
        for in_key, folder in [*inputs.items(), *outs[i + 1 :]]:
            if nested(out, folder):
                problems.append(
                    f"{out_key} ({out.split(':', 1)[-1]}) overlaps {in_key} "
                    f"({folder.split(':', 1)[-1]}); give each its own folder, side by side"
                )
    return problems
