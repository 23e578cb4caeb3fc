"""How long the training thread spends at each epoch's end in `kerapipe train` (the callbacks:
checkpoints, CSV log, DVCLive, the user's), the bookkeeping the epochs wait for.

    python benchmarks/epoch_ends.py PARAMS_FILE     # after `kerapipe inventory --params ...`

Runs the train stage in this process, with Keras' ``CallbackList.on_epoch_end`` timed, and
prints the total, the first epoch's (which saves the run's first checkpoint itself) and the
median of the others. A diagnostic beside the whole-command rows of run.py, which time the
same work among everything else: point ``PYTHONPATH`` at another checkout of kerapipe to
compare two versions on the same params.
"""

from __future__ import annotations

import os
import statistics
import sys
import time


def main(params_file: str) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from keras.src.callbacks.callback_list import CallbackList

    from kerapipe.config import load_params
    from kerapipe.context import RunContext
    from kerapipe.steps.train import run_training

    spent: list[float] = []
    timed = CallbackList.on_epoch_end

    def on_epoch_end(self, epoch, logs=None):
        start = time.perf_counter()
        timed(self, epoch, logs)
        spent.append(time.perf_counter() - start)

    CallbackList.on_epoch_end = on_epoch_end
    start = time.perf_counter()
    run_training(RunContext.from_params(load_params(params_file)))
    total = time.perf_counter() - start
    later = statistics.median(spent[1:]) if len(spent) > 1 else float("nan")
    print(
        f"epoch ends: {sum(spent):.2f} s over {len(spent)} epochs (first {spent[0] * 1000:.0f} "
        f"ms, median of the others {later * 1000:.0f} ms); run_training {total:.1f} s"
    )


if __name__ == "__main__":
    main(sys.argv[1])
