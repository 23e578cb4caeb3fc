"""DVC stage 'train': `python stages/train.py [--params params.yaml]`."""

import sys

from kerapipe.cli import run

if __name__ == "__main__":
    run(["train", *sys.argv[1:]])
