"""DVC stage 'validate': `python stages/validate.py [--params params.yaml]`."""

import sys

from kerapipe.cli import run

if __name__ == "__main__":
    run(["validate", *sys.argv[1:]])
