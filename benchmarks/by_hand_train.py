"""The training script a Keras user writes by hand: the baseline of the whole-command rows.

    python benchmarks/by_hand_train.py DATA_DIR MODEL_PATH --epochs 15 --height 16 --width 16
        --channels 1 [--filters 32 64] [--dense-units 128] [--dropout 0.3] [--batch-size 32]

``keras.utils.image_dataset_from_directory`` (80/20 split, seeded), the network of kerapipe's
``simple_cnn`` written out (two 3x3 convolutions and a max-pool per entry of ``--filters``, a
dense layer, dropout, a softmax), Adam at 0.001, ``fit`` with the validation set, and
``model.save``. It imports Keras only, not kerapipe: it is what kerapipe is measured against.
"""

from __future__ import annotations

import argparse

import keras
from keras import layers


def build(shape: tuple[int, int, int], classes: int, filters, dense_units, dropout):
    """kerapipe's ``simple_cnn``, layer for layer."""
    inputs = keras.Input(shape=shape, name="image")
    x = layers.Rescaling(1.0 / 255)(inputs)
    for count in filters:
        x = layers.Conv2D(count, 3, padding="same", activation="relu")(x)
        x = layers.Conv2D(count, 3, padding="same", activation="relu")(x)
        x = layers.MaxPooling2D()(x)
    x = layers.Flatten()(x)
    x = layers.Dense(dense_units, activation="relu")(x)
    x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(classes, activation="softmax", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="simple_cnn")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data_dir")
    parser.add_argument("model_path")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--height", type=int, default=16)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--channels", type=int, choices=(1, 3), default=1)
    parser.add_argument("--filters", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--dense-units", type=int, default=128)
    parser.add_argument("--dropout", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    keras.utils.set_random_seed(args.seed)
    train, validation = keras.utils.image_dataset_from_directory(
        args.data_dir,
        validation_split=0.2,
        subset="both",
        seed=args.seed,
        image_size=(args.height, args.width),
        color_mode="grayscale" if args.channels == 1 else "rgb",
        batch_size=args.batch_size,
    )
    shape = (args.height, args.width, args.channels)
    model = build(shape, len(train.class_names), args.filters, args.dense_units, args.dropout)
    model.compile(
        optimizer=keras.optimizers.Adam(0.001),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.fit(train, validation_data=validation, epochs=args.epochs, verbose=2)
    model.save(args.model_path)


if __name__ == "__main__":
    main()
