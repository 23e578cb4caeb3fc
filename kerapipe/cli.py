"""The ``kerapipe`` command. It parses arguments and calls the library; nothing else.

TensorFlow is imported only by the commands that train, predict or export to a format (and by
``validate`` when a Keras component has arguments to check), without its native start-up
lines, so ``--help``, ``validate``, ``inventory``, ``components`` and an export with no
formats start fast and stages print only kerapipe's and Keras' own output.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from kerapipe import native_logs
from kerapipe.errors import KerapipeError

if TYPE_CHECKING:
    from kerapipe.config import Params

log = logging.getLogger("kerapipe")
# What Ctrl-C leaves, by command: one line, no traceback.
_RESUME = (
    "The checkpoints of the epochs completed are kept: rerun with TRAINING.LOAD_CHECKPOINT: "
    "true to continue after the last one."
)
INTERRUPTED = {
    "train": _RESUME,
    "run": _RESUME,
    "": "Files are written whole or not at all: nothing half-written was left.",
}


def cmd_inventory(args: argparse.Namespace) -> None:
    from kerapipe.steps.inventory import run_inventory

    run_inventory(_context(_params(args)))


def cmd_train(args: argparse.Namespace) -> None:
    params = _backend_params(args, launch=True)
    from kerapipe.steps.train import run_training

    run_training(_context(params))


def cmd_export(args: argparse.Namespace) -> None:
    from kerapipe.exporters import EXPORT_BACKEND
    from kerapipe.steps.export import run_export

    params = _params(args, EXPORT_BACKEND)
    if params.DATA.EXPORT.FORMATS:  # none (the default): empty outputs, no TensorFlow
        _start_backend(params)
    run_export(_context(params))


def cmd_predict(args: argparse.Namespace) -> None:
    params = _backend_params(args)
    from kerapipe.steps.predict import run_prediction

    run_prediction(_context(params))


def cmd_run(args: argparse.Namespace) -> None:
    params = _backend_params(args)
    from kerapipe.steps.pipeline import run_pipeline

    run_pipeline(_context(params))


def cmd_validate(args: argparse.Namespace) -> None:
    from kerapipe.steps.validate import validate_pipeline, write_stamp

    print(validate_pipeline(_context(_params(args))))
    if args.stamp:
        write_stamp(args.stamp)


def cmd_components(args: argparse.Namespace) -> None:
    from kerapipe.registry import describe_all

    print(describe_all())


def cmd_schema(args: argparse.Namespace) -> None:
    import json

    from kerapipe.schema import params_schema

    print(json.dumps(params_schema(), indent=2))


COMMANDS: dict[str, tuple[Callable[[argparse.Namespace], None], str]] = {
    "inventory": (cmd_inventory, "list the training data and split it into train/validation"),
    "train": (cmd_train, "train the model on the inventory and save it"),
    "export": (cmd_export, "export the model to DATA.EXPORT.FORMATS, each checked against it"),
    "predict": (cmd_predict, "predict on every image under DATA.PREDICTION_DATA_DIR"),
    "run": (cmd_run, "inventory, train, export and predict in order (without DVC)"),
    "validate": (cmd_validate, "check the params file and the data it points at; no training"),
    "components": (cmd_components, "list registered models, losses, optimizers, metrics, ..."),
    "schema": (cmd_schema, "print the JSON Schema of params.yaml (for editors)"),
}
WITHOUT_PARAMS = {"components", "schema"}


def build_parser() -> argparse.ArgumentParser:
    from kerapipe import __version__

    parser = argparse.ArgumentParser(
        prog="kerapipe",
        description="Reproducible Keras image pipeline: inventory -> train -> predict.",
    )
    parser.add_argument("--version", action="version", version=f"kerapipe {__version__}")
    output = argparse.ArgumentParser(add_help=False)  # -q / -v, after the command
    loudness = output.add_mutually_exclusive_group()
    loudness.add_argument(
        "-q", "--quiet", action="store_true", help="only warnings and errors; no progress"
    )
    loudness.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="debug messages, and TensorFlow's own start-up lines",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text, parents=[output])
        if name in WITHOUT_PARAMS:
            continue
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
    level = logging.WARNING if args.quiet else logging.DEBUG if args.verbose else logging.INFO
    logging.basicConfig(level=level, format="kerapipe: %(message)s", force=True)
    logging.getLogger().setLevel(level)
    for noisy in ("absl", "h5py", "matplotlib", "PIL", "urllib3", "fsspec"):
        logging.getLogger(noisy).setLevel(max(level, logging.INFO))
    # Storage clients say where they found credentials and endpoints, JAX which platforms it
    # tried: only with -v.
    for chatty in ("botocore", "aiobotocore", "s3fs", "gcsfs", "adlfs", "azure", "jax"):
        logging.getLogger(chatty).setLevel(logging.INFO if args.verbose else logging.WARNING)
    native_logs.show_all(args.verbose)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if args.verbose else "2")
    try:
        COMMANDS[args.command][0](args)
        sys.stdout.flush()
    except KerapipeError as err:
        print(f"kerapipe {args.command}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        after = INTERRUPTED.get(args.command, INTERRUPTED[""])
        print(f"\nkerapipe {args.command}: interrupted. {after}", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`kerapipe components | head`): not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the exit's own flush does not fail again
        return 0
    return 0


def run(argv: Sequence[str] | None = None) -> None:
    """The ``kerapipe`` command (and the DVC stages): ``main``, then an exit that skips
    tearing the interpreter down (``exit_without_teardown``)."""
    atexit.register(exit_without_teardown)  # first registered: it runs after every other
    code = exit_status(argv)
    _exit_code.append(code)
    sys.exit(code)


def exit_status(argv: Sequence[str] | None = None) -> int:
    """``main``'s exit status, argparse's exits (--help, --version, usage errors) included."""
    try:
        return main(argv)
    except SystemExit as exit:
        return exit.code if isinstance(exit.code, int) else 0 if exit.code is None else 1


_exit_code: list[int] = []


def exit_without_teardown() -> None:
    """The last exit handler: once Python has joined the threads and run every other exit
    handler (logging flushes, temporary folders go, JAX leaves its distributed service),
    end the process without its teardown of every module. After a training run,
    TensorFlow's objects take a second or more to free, and DVC's git objects print
    "Exception ignored" lines when freed after Ctrl-C: work the end of the process does
    anyway."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a reader gone, a stream closed
            stream.flush()
    os._exit(_exit_code[-1] if _exit_code else 1)


def _launch_if_asked(args: argparse.Namespace) -> None:
    """With ``KERAPIPE_LAUNCHER`` set (``srun``, ``mpirun ...``), run this same train command
    under it, on every host it starts, and exit with its status (kerapipe/distribution.py)."""
    import subprocess

    from kerapipe.distribution import LAUNCHED, launch_command

    own = [sys.executable, "-m", "kerapipe.cli", "train", "--params", os.path.abspath(args.params)]
    own += ["-q"] if args.quiet else ["-v"] if args.verbose else []
    command = launch_command(own)
    if command is None:
        return
    log.info("Starting the training processes: %s", " ".join(command))
    code = subprocess.run(command, env={**os.environ, LAUNCHED: "1"}, check=False).returncode
    if code:
        raise KerapipeError(f"the training processes ended with status {code} (see above).")
    raise SystemExit(0)


def _context(params: Params):
    """The run context of ``params``: every check run once (kerapipe/context.py)."""
    from kerapipe.context import RunContext

    return RunContext.from_params(params)


def _params(args: argparse.Namespace, backend: str | None = None):
    """The params, with ``KERAS_BACKEND`` set (kerapipe/backend.py): ``backend``, or else
    ``TRAINING.BACKEND``."""
    from kerapipe.backend import use_backend
    from kerapipe.config import load_params

    params = load_params(args.params)
    use_backend(backend or params.TRAINING.BACKEND)
    return params


def _backend_params(args: argparse.Namespace, launch: bool = False) -> Params:
    """The params, with ``KERAS_BACKEND`` set from ``TRAINING.BACKEND`` and the backend
    started (``_start_backend``). With ``launch``, a ``data_parallel`` train runs
    under ``KERAPIPE_LAUNCHER`` when that is set (and this process exits with it)."""
    params = _params(args)
    if launch and params.TRAINING.DISTRIBUTION == "data_parallel":
        _launch_if_asked(args)
    _start_backend(params)
    return params


def _start_backend(params: Params) -> None:
    """TRAINING.DEVICES applied, then TensorFlow started (``backend.start_tensorflow``): the
    devices a run may use and TensorFlow's settings are read once, when it starts. On JAX,
    compiled programs are kept for the next process (``backend.use_compilation_cache``)."""
    from kerapipe.backend import start_tensorflow, use_compilation_cache
    from kerapipe.devices import select_devices

    select_devices(params.TRAINING.DEVICES)
    start_tensorflow()
    use_compilation_cache(params.DATA.REMOTE_CACHE_DIR)


if __name__ == "__main__":
    run()
