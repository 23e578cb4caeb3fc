"""Derive the table of ``keras.applications`` backbones from the installed Keras, and write it
to kerapipe/models/keras_backbones.py: ``python -m kerapipe.models.derive_backbones``.

The table lets kerapipe register every backbone by name, and check its smallest input, without
importing Keras (``kerapipe --help``, ``validate`` and ``components`` start fast). Everything
in it comes from Keras: the constructors ``keras.applications`` exports, the module whose
``preprocess_input`` each one's weights expect, and the smallest input each accepts (asked of
Keras itself, which refuses a smaller one before building anything). A test derives it again
and fails when the installed Keras disagrees with the committed table.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

TABLE = Path(__file__).with_name("keras_backbones.py")
HEADER = '''"""Every ``keras.applications`` backbone, derived from Keras by
kerapipe/models/derive_backbones.py (``python -m kerapipe.models.derive_backbones``); do not
edit. Each entry: kerapipe's name, the constructor, the module of its ``preprocess_input``,
and the smallest input height and width it accepts."""

# (name, constructor, module, min_size)
BACKBONES = [
'''


def backbone_name(constructor: str) -> str:
    """kerapipe's snake_case name for a Keras constructor: ``MobileNetV2`` ->
    ``mobilenet_v2``, ``ResNet50`` -> ``resnet50``, ``ConvNeXtXLarge`` -> ``convnext_xlarge``,
    ``NASNetLarge`` -> ``nasnet_large`` (a network's "Net" or "NeXt" joins the word before)."""
    glued = re.sub(
        r"([A-Z]*[a-z]*)N(et|eXt)",
        lambda m: m.group(1).capitalize() + "n" + m.group(2).lower(),
        constructor,
    )
    words = re.findall(r"[A-Z][A-Z][a-z]+|[A-Z]+(?![a-z])\d*|[A-Z]?[a-z]+\d*|\d+", glued)
    return "_".join(word.lower() for word in words)


def smallest_input(constructor: Any) -> int:
    """The smallest input height and width ``constructor`` accepts: Keras' applications
    refuse a smaller one, naming it, before they build anything."""
    try:
        constructor(include_top=False, weights=None, input_shape=(1, 1, 3))
    except ValueError as err:
        found = re.search(r"at least (\d+)x\1", str(err))
        if found:
            return int(found[1])
    raise RuntimeError(f"{constructor.__name__} states no smallest input size")


def derive_backbones() -> list[dict[str, Any]]:
    """One entry per constructor ``keras.applications`` exports, sorted by name."""
    import keras

    applications = keras.applications
    entries = []
    for constructor in sorted(n for n in dir(applications) if n[:1].isupper()):
        function = getattr(applications, constructor)
        module = function.__module__.rsplit(".", 1)[-1]
        if not hasattr(getattr(applications, module, None), "preprocess_input"):
            raise RuntimeError(f"keras.applications.{module} has no preprocess_input")
        entries.append(
            {
                "name": backbone_name(constructor),
                "constructor": constructor,
                "module": module,
                "min_size": smallest_input(function),
            }
        )
    return sorted(entries, key=lambda entry: entry["name"])


def table_text(entries: list[dict[str, Any]]) -> str:
    """The module that holds ``entries``."""
    rows = "".join(
        f'    ("{e["name"]}", "{e["constructor"]}", "{e["module"]}", {e["min_size"]}),\n'
        for e in entries
    )
    return HEADER + rows + "]\n"


def main() -> None:
    entries = derive_backbones()
    TABLE.write_text(table_text(entries))
    print(f"Wrote {TABLE}: {len(entries)} backbones.")


if __name__ == "__main__":
    main()
