"""Keep TensorFlow's native start-up lines out of a stage's output.

Importing TensorFlow prints C++ log lines (absl's "All log messages before
absl::InitializeLog()", oneDNN and CPU-feature notices) straight to file descriptor 2,
before ``TF_CPP_MIN_LOG_LEVEL`` takes effect. The import runs with descriptor 2 pointed at a
temporary file; afterwards the lines that are not such notices are written to stderr, so
real errors still show. ``kerapipe -v`` leaves them all in.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator

# glog/absl lines of level I (info) or W (warning), the absl preamble, and the CPU notice's
# second line. Errors (E, F) pass.
NOISE = re.compile(
    r"^([IW]\d{4} [\d:.]+\s+\d+ \S+:\d+\] "
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|To enable the following instructions: .* rebuild TensorFlow)"
)
_show_all = False


def show_all(value: bool = True) -> None:
    """Let every native line through (``kerapipe -v``)."""
    global _show_all
    _show_all = value


def import_tensorflow() -> None:
    """Import TensorFlow (if not yet imported) without its start-up notices."""
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if _show_all:
        import tensorflow  # noqa: F401

        return
    with _filtered_stderr():
        import tensorflow  # noqa: F401


@contextlib.contextmanager
def _filtered_stderr() -> Iterator[None]:
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # no real descriptor (a test's capture)
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), fd)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, fd)
            os.close(saved)
            captured.seek(0)
            kept = [
                line
                for line in captured.read().decode(errors="replace").splitlines(keepends=True)
                if not NOISE.match(line)
            ]
            sys.stderr.write("".join(kept))
