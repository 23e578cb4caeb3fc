"""DVC stage 'inventory': `python stages/inventory.py [--params params.yaml]`."""

import sys

from kerapipe.cli import run

if __name__ == "__main__":
    run(["inventory", *sys.argv[1:]])
