"""DVC stage 'train': `python stages/train.py [--params params.yaml]`."""

import sys

from kerapipe.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
