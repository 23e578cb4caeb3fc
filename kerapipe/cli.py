"""The ``kerapipe`` command. It parses arguments and calls the library; nothing else.

TensorFlow is imported only by the commands that train or predict, so ``--help``,
``validate``, ``inventory`` and ``components`` start fast.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence

from kerapipe.errors import KerapipeError

log = logging.getLogger("kerapipe")


def cmd_inventory(args: argparse.Namespace) -> None:
    from kerapipe.inventory import run_inventory

    run_inventory(_params(args))


def cmd_train(args: argparse.Namespace) -> None:
    from kerapipe.train import run_training

    run_training(_params(args))


def cmd_predict(args: argparse.Namespace) -> None:
    from kerapipe.predict import run_prediction

    run_prediction(_params(args))


def cmd_run(args: argparse.Namespace) -> None:
    from kerapipe.pipeline import run_pipeline

    run_pipeline(_params(args))


def cmd_validate(args: argparse.Namespace) -> None:
    from kerapipe.pipeline import validate_pipeline, write_stamp

    print(validate_pipeline(_params(args)))
    if args.stamp:
        write_stamp(args.stamp)


def cmd_components(args: argparse.Namespace) -> None:
    from kerapipe.pipeline import describe_components

    print(describe_components())


COMMANDS: dict[str, tuple[Callable[[argparse.Namespace], None], str]] = {
    "inventory": (cmd_inventory, "list the training data and split it into train/validation"),
    "train": (cmd_train, "train the model on the inventory and save it"),
    "predict": (cmd_predict, "predict on every image under DATA.PREDICTION_DATA_DIR"),
    "run": (cmd_run, "inventory, train and predict in order (without DVC)"),
    "validate": (cmd_validate, "check the params file and the data it points at; no training"),
    "components": (cmd_components, "list registered models, losses, optimizers, metrics, ..."),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kerapipe",
        description="Reproducible Keras image pipeline: inventory -> train -> predict.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        command.add_argument(
            "--params",
            default="params.yaml",
            help="params file: YAML, or JSON in the old config.json layout (default: params.yaml)",
        )
        if name == "validate":
            command.add_argument(
                "--stamp",
                metavar="PATH",
                help="when every check passes, write this file (the DVC stage 'validate' "
                "outputs it, and the other stages depend on it)",
            )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="kerapipe: %(message)s")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        COMMANDS[args.command][0](args)
        sys.stdout.flush()
    except KerapipeError as err:
        print(f"kerapipe {args.command}: error: {err}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # the reader went away (`kerapipe components | head`): not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the exit's own flush does not fail again
        return 0
    return 0


def _params(args: argparse.Namespace):
    from kerapipe.config import load_params

    return load_params(args.params)


if __name__ == "__main__":
    sys.exit(main())
