"""DVC stage 'validate': `python stages/validate.py --stamp PATH [--params params.yaml]`."""

import sys

from kerapipe.cli import main

if __name__ == "__main__":
    sys.exit(main(["validate", *sys.argv[1:]]))
