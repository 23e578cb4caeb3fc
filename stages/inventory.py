"""DVC stage 'inventory': `python stages/inventory.py [--params params.yaml]`."""

import sys

from kerapipe.cli import main

if __name__ == "__main__":
    sys.exit(main(["inventory", *sys.argv[1:]]))
