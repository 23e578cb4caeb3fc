"""The transfer-learning script a Keras user writes by hand: the baseline of the frozen rows.

    python benchmarks/by_hand_frozen.py DATA_DIR WEIGHTS TIMES_JSON [--epochs 10] [--size 160]

``keras.utils.image_dataset_from_directory`` (80/20 split, seeded, batch 32), MobileNetV2
without its top loaded from WEIGHTS and frozen, called with ``training=False`` as Keras'
transfer-learning guide does, its ``preprocess_input`` scaling, then the head kerapipe puts on
a backbone (global average pooling, dropout 0.2, a softmax), Adam at 0.001, ``fit`` with the
validation set. The end of each epoch is written to TIMES_JSON (seconds since the start of
``fit``). It imports Keras only, not kerapipe.
"""

from __future__ import annotations

import argparse
import json
import time

import keras
from keras import layers


class EpochClock(keras.callbacks.Callback):
    """Each epoch's end, in seconds since ``fit`` began, written to a JSON file."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path, self.ends, self.start = path, [], 0.0

    def on_train_begin(self, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.ends.append(time.perf_counter() - self.start)
        with open(self.path, "w") as handle:
            json.dump(self.ends, handle)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data_dir")
    parser.add_argument("weights")
    parser.add_argument("times")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    keras.utils.set_random_seed(args.seed)
    train, validation = keras.utils.image_dataset_from_directory(
        args.data_dir,
        validation_split=0.2,
        subset="both",
        seed=args.seed,
        image_size=(args.size, args.size),
        batch_size=32,
    )
    shape = (args.size, args.size, 3)
    base = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=shape)
    base.load_weights(args.weights)
    base.trainable = False
    inputs = keras.Input(shape=shape)
    x = layers.Rescaling(1 / 127.5, offset=-1)(inputs)  # mobilenet_v2.preprocess_input
    x = base(x, training=False)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.2)(x)
    outputs = layers.Dense(len(train.class_names), activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer=keras.optimizers.Adam(0.001),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.fit(train, validation_data=validation, epochs=args.epochs, verbose=2,
              callbacks=[EpochClock(args.times)])  # fmt: skip


if __name__ == "__main__":
    main()
