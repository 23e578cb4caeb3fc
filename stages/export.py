"""DVC stage 'export': `python stages/export.py [--params params.yaml]`."""

import sys

from kerapipe.cli import main

if __name__ == "__main__":
    sys.exit(main(["export", *sys.argv[1:]]))
