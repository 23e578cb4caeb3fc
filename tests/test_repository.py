"""The template's own files say what the README says about them."""

import subprocess

from tests.helpers import REPO


def tracked() -> list[str]:
    return subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.splitlines()


def test_no_lock_file_is_committed():
    """The README: "dvc.lock is not committed in this template" (it would describe outputs
    that nobody can `dvc pull`). DVC's autostage adds it after a local `dvc repro`."""
    locks = [name for name in tracked() if name.endswith("dvc.lock")]
    assert locks == [], f"unstage them: git rm --cached {' '.join(locks)}"
    assert "**`dvc.lock` is not committed in this template.**" in (REPO / "README.md").read_text()


def test_generated_outputs_are_ignored_by_git():
    ignored = subprocess.run(
        ["git", "check-ignore", "models/x", "predictions/x", "data/inventory/x",
         ".kerapipe/validated", ".dvclive.set-aside/x", ".venv/x"],
        cwd=REPO, capture_output=True, text=True,
    ).stdout.split()  # fmt: skip
    assert len(ignored) == 6, ignored
