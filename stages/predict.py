"""DVC stage 'predict': `python stages/predict.py [--params params.yaml]`."""

import sys

from kerapipe.cli import run

if __name__ == "__main__":
    run(["predict", *sys.argv[1:]])
