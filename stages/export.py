"""DVC stage 'export': `python stages/export.py [--params params.yaml]`."""

import sys

from kerapipe.cli import run

if __name__ == "__main__":
    run(["export", *sys.argv[1:]])
