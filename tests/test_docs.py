"""The docs stay true to the code and build: the generated parameter reference and backbones
table are current, MkDocs builds the site with no warning, every page is in the nav, and the
README is the short front door that starts with the two commands (the second one exactly what
CI runs) and links only to files that exist."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

from kerapipe.docs_reference import (
    COMMAND,
    PARAMETERS_PAGE,
    PRETRAINED_PAGE,
    backbones_block,
    parameters_page,
)
from tests.helpers import REPO

README = REPO / "README.md"
DOCS = REPO / "docs"
RUN_PIPELINE = (
    'python3 -m venv .venv && . .venv/bin/activate && pip install -e ".[cpu]" && dvc repro'
)
MAX_README_LINES = 250


def test_parameter_reference_is_current():
    assert PARAMETERS_PAGE == DOCS / "parameters.md"
    assert PARAMETERS_PAGE.read_text() == parameters_page(), (
        f"docs/parameters.md is stale: the params models changed. Run `{COMMAND}`."
    )


def test_backbones_table_is_current():
    assert backbones_block() in PRETRAINED_PAGE.read_text(), (
        f"the backbones table in docs/pretrained.md is stale. Run `{COMMAND}`."
    )


def test_the_site_builds_without_warnings(tmp_path):
    mkdocs = Path(sys.executable).with_name("mkdocs")
    command = [str(mkdocs)] if mkdocs.is_file() else [sys.executable, "-m", "mkdocs"]
    built = subprocess.run(
        [*command, "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, (
        f"mkdocs build --strict failed (pip install -e '.[docs]' installs MkDocs):\n"
        f"{built.stdout}{built.stderr}"
    )
    assert (tmp_path / "site" / "index.html").is_file()


def nav_pages(nav: list) -> list[str]:
    pages = []
    for item in nav:
        value = next(iter(item.values())) if isinstance(item, dict) else item
        pages += nav_pages(value) if isinstance(value, list) else [value]
    return pages


def test_every_page_is_in_the_nav():
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text())
    assert config["docs_dir"] == "docs" and config["strict"] is True
    listed = nav_pages(config["nav"])
    pages = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md"))
    assert sorted(listed) == pages, "list every page of docs/ in mkdocs.yml's nav, once"


def code_blocks(text: str) -> list[str]:
    return [block.strip() for block in re.findall(r"^```[a-z]*\n(.*?)^```", text, re.M | re.S)]


def ci_command() -> str:
    """The command .ci/run runs after changing to the repository root."""
    lines = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()]
    after_cd = lines[next(i for i, line in enumerate(lines) if line.startswith("cd ")) + 1 :]
    return next(line for line in after_cd if line and not line.startswith("#"))


def test_readme_is_short_and_starts_with_the_two_commands():
    text = README.read_text()
    assert len(text.splitlines()) <= MAX_README_LINES, (
        f"README.md has {len(text.splitlines())} lines, over {MAX_README_LINES}: move the "
        "detail into docs/"
    )
    first_section = text.split("\n## ", 1)[0]
    assert code_blocks(first_section)[:2] == [RUN_PIPELINE, ci_command()], (
        "README.md must open with the two commands: run the pipeline, then exactly what "
        ".ci/run runs"
    )


def test_readme_links_point_at_files():
    links = re.findall(r"\]\(([^)\s]+)\)", README.read_text())
    local = [link.split("#", 1)[0] for link in links if "://" not in link]
    local = [link for link in local if link and not link.startswith("mailto:")]
    assert local, "the README links to the docs"
    missing = [link for link in local if not (REPO / link).exists()]
    assert missing == [], f"README.md links to files that do not exist: {missing}"
