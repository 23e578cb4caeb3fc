"""Which storage settings look like secrets. Params are logged and versioned (inventory.json,
run_info.json, dvclive/params.yaml, git), so ``DATA.STORAGE_OPTIONS`` may hold only settings
such as an endpoint or a region; a key, token or password there is refused."""

from __future__ import annotations

import re
from typing import Any

# Words that make a storage option's name a secret (split from snake_case or camelCase), and
# the values of such names that are not secrets (gcsfs' ``token: anon``, say).
SECRET_WORDS = frozenset(
    {"key", "secret", "token", "password", "passwd", "pwd", "passphrase", "credential",
     "credentials", "sas", "auth", "authorization", "connection", "cookie", "private"}
)  # fmt: skip
_WORDS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")  # of snake_case and camelCase
NOT_SECRETS = frozenset({"anon", "google_default", "cloud", "cache", "browser", None, False})


def secret_settings(options: Any, path: str = "DATA.STORAGE_OPTIONS") -> list[str]:
    """The key paths in ``options`` (nested dicts and lists) that look like secrets: a name
    with a word such as key, secret, token or password, or a URL with a password in it."""
    found = []
    if isinstance(options, dict):
        for name, value in options.items():
            words = {w.lower() for w in _WORDS.findall(str(name))}
            if words & SECRET_WORDS and not _is_plain(value):
                found.append(f"{path}.{name}")
            else:
                found += secret_settings(value, f"{path}.{name}")
    elif isinstance(options, list):
        for i, value in enumerate(options):
            found += secret_settings(value, f"{path}.{i}")
    elif isinstance(options, str) and re.search(r"://[^/@\s]*:[^/@\s]*@", options):
        found.append(path)
    return found


def _is_plain(value: Any) -> bool:
    """Whether a value under a secret-sounding name is a setting, not a secret."""
    if isinstance(value, bool) or value is None:
        return True
    return isinstance(value, str) and value in NOT_SECRETS
