"""DVC stage 'predict': `python stages/predict.py [--params params.yaml]`."""

import sys

from kerapipe.cli import main

if __name__ == "__main__":
    sys.exit(main(["predict", *sys.argv[1:]]))
