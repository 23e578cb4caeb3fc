"""The built-in names of every registry, registered lazily so that listing and validating
names never imports TensorFlow.

Keras built-ins keep their usual snake_case names (``sparse_categorical_crossentropy``,
``adam``, ``early_stopping``); a test checks that each one resolves in the installed Keras.
"""

from kerapipe.registry import CALLBACKS, LOSSES, METRICS, OPTIMIZERS, SCHEDULES, SOURCES, TASKS

KERAS_LOSSES = {
    "binary_crossentropy": "BinaryCrossentropy",
    "binary_focal_crossentropy": "BinaryFocalCrossentropy",
    "categorical_crossentropy": "CategoricalCrossentropy",
    "categorical_focal_crossentropy": "CategoricalFocalCrossentropy",
    "categorical_generalized_cross_entropy": "CategoricalGeneralizedCrossEntropy",
    "categorical_hinge": "CategoricalHinge",
    "circle": "Circle",
    "cosine_similarity": "CosineSimilarity",
    "ctc": "CTC",
    "dice": "Dice",
    "hinge": "Hinge",
    "huber": "Huber",
    "kl_divergence": "KLDivergence",
    "log_cosh": "LogCosh",
    "mean_absolute_error": "MeanAbsoluteError",
    "mean_absolute_percentage_error": "MeanAbsolutePercentageError",
    "mean_squared_error": "MeanSquaredError",
    "mean_squared_logarithmic_error": "MeanSquaredLogarithmicError",
    "poisson": "Poisson",
    "sparse_categorical_crossentropy": "SparseCategoricalCrossentropy",
    "squared_hinge": "SquaredHinge",
    "tversky": "Tversky",
}

KERAS_OPTIMIZERS = {
    "adadelta": "Adadelta",
    "adafactor": "Adafactor",
    "adagrad": "Adagrad",
    "adam": "Adam",
    "adamax": "Adamax",
    "adamw": "AdamW",
    "ftrl": "Ftrl",
    "lamb": "Lamb",
    "lion": "Lion",
    "nadam": "Nadam",
    "rmsprop": "RMSprop",
    "sgd": "SGD",
}

KERAS_METRICS = {
    "auc": "AUC",
    "binary_accuracy": "BinaryAccuracy",
    "binary_crossentropy": "BinaryCrossentropy",
    "binary_iou": "BinaryIoU",
    "categorical_accuracy": "CategoricalAccuracy",
    "categorical_crossentropy": "CategoricalCrossentropy",
    "categorical_hinge": "CategoricalHinge",
    "concordance_correlation": "ConcordanceCorrelation",
    "cosine_similarity": "CosineSimilarity",
    "exact_accuracy": "Accuracy",
    "f1_score": "F1Score",
    "fbeta_score": "FBetaScore",
    "false_negatives": "FalseNegatives",
    "false_positives": "FalsePositives",
    "hinge": "Hinge",
    "iou": "IoU",
    "kl_divergence": "KLDivergence",
    "log_cosh_error": "LogCoshError",
    "mean_absolute_error": "MeanAbsoluteError",
    "mean_absolute_percentage_error": "MeanAbsolutePercentageError",
    "mean_iou": "MeanIoU",
    "mean_squared_error": "MeanSquaredError",
    "mean_squared_logarithmic_error": "MeanSquaredLogarithmicError",
    "one_hot_iou": "OneHotIoU",
    "one_hot_mean_iou": "OneHotMeanIoU",
    "pearson_correlation": "PearsonCorrelation",
    "poisson": "Poisson",
    "precision": "Precision",
    "precision_at_recall": "PrecisionAtRecall",
    "r2_score": "R2Score",
    "recall": "Recall",
    "recall_at_precision": "RecallAtPrecision",
    "root_mean_squared_error": "RootMeanSquaredError",
    "sensitivity_at_specificity": "SensitivityAtSpecificity",
    "sparse_categorical_accuracy": "SparseCategoricalAccuracy",
    "sparse_categorical_crossentropy": "SparseCategoricalCrossentropy",
    "sparse_top_k_categorical_accuracy": "SparseTopKCategoricalAccuracy",
    "specificity_at_sensitivity": "SpecificityAtSensitivity",
    "squared_hinge": "SquaredHinge",
    "top_k_categorical_accuracy": "TopKCategoricalAccuracy",
    "true_negatives": "TrueNegatives",
    "true_positives": "TruePositives",
}

KERAS_CALLBACKS = {
    "early_stopping": "EarlyStopping",
    "reduce_lr_on_plateau": "ReduceLROnPlateau",
    "swap_ema_weights": "SwapEMAWeights",
    "tensorboard": "TensorBoard",
    "terminate_on_nan": "TerminateOnNaN",
}


KERAS_SCHEDULES = {
    "cosine_decay": "CosineDecay",
    "cosine_decay_restarts": "CosineDecayRestarts",
    "exponential_decay": "ExponentialDecay",
    "inverse_time_decay": "InverseTimeDecay",
    "piecewise_constant_decay": "PiecewiseConstantDecay",
    "polynomial_decay": "PolynomialDecay",
}


# Keras built-ins that need a package kerapipe does not install.
KERAS_REQUIRES = {"tensorboard": ("tensorboard",)}


def _register_keras(registry, module: str, table: dict[str, str]) -> None:
    for name, class_name in table.items():
        registry.register(
            name,
            f"{module}:{class_name}",
            summary=f"{module}.{class_name}",
            requires=KERAS_REQUIRES.get(name, ()),
        )


_register_keras(LOSSES, "keras.losses", KERAS_LOSSES)
_register_keras(OPTIMIZERS, "keras.optimizers", KERAS_OPTIMIZERS)
_register_keras(METRICS, "keras.metrics", KERAS_METRICS)
_register_keras(CALLBACKS, "keras.callbacks", KERAS_CALLBACKS)
_register_keras(SCHEDULES, "keras.optimizers.schedules", KERAS_SCHEDULES)
CALLBACKS.register(
    "learning_rate_scheduler",
    "kerapipe.components:epoch_schedule",
    summary="keras.callbacks.LearningRateScheduler stepping a named schedule once per epoch "
    "(CALLBACK_PARAMS: SCHEDULE_NAME, SCHEDULE_PARAMS)",
)

METRICS.register(
    "accuracy",
    "kerapipe.components:sparse_accuracy",
    summary="share of integer labels predicted right (sparse categorical accuracy), "
    "logged as 'accuracy'",
)

LOSSES.register(
    "sparse_dice",
    "kerapipe.losses:SparseDiceLoss",
    summary="1 - mean soft Dice over classes, integer masks vs class scores (segmentation)",
)
LOSSES.register(
    "sparse_focal",
    "kerapipe.losses:SparseFocalLoss",
    summary="focal loss for integer labels/masks: cross-entropy down-weighting easy pixels",
)
METRICS.register(
    "sparse_mean_iou",
    "kerapipe.metrics:SparseMeanIoU",
    summary="mean IoU over classes from integer masks and class scores, logged as 'mean_iou'",
)
METRICS.register(
    "sparse_mean_dice",
    "kerapipe.metrics:SparseMeanDice",
    summary="mean Dice over classes from integer masks and class scores, logged as 'mean_dice'",
)

SOURCES.register("local", "kerapipe.sources:LocalSource", summary="files on this machine")
# fsspec protocols: name, class, the package that implements it (its import name), summary.
# A test checks that each name is a protocol fsspec knows.
FSSPEC_SOURCES = [
    ("s3", "FsspecSource", "s3fs", "Amazon S3 and S3-compatible stores: s3://bucket/prefix"),
    ("s3a", "FsspecSource", "s3fs", "the same as s3 (the Hadoop spelling)"),
    ("gcs", "FsspecSource", "gcsfs", "Google Cloud Storage: gcs://bucket/prefix"),
    ("gs", "FsspecSource", "gcsfs", "the same as gcs: gs://bucket/prefix"),
    ("az", "FsspecSource", "adlfs", "Azure Blob Storage and Data Lake Gen2: az://container/path"),
    ("abfs", "FsspecSource", "adlfs", "the same as az: abfs://container/path"),
    ("oss", "FsspecSource", "ossfs", "Alibaba Cloud Object Storage: oss://bucket/prefix"),
    ("http", "HttpSource", "aiohttp", "files served over HTTP, read-only: http://host/folder"),
    ("https", "HttpSource", "aiohttp", "files served over HTTPS, read-only: https://host/folder"),
    ("sftp", "FileServerSource", "paramiko", "an SSH file server: sftp://host/path"),
    ("ssh", "FileServerSource", "paramiko", "the same as sftp: ssh://host/path"),
    ("ftp", "FileServerSource", None, "an FTP server: ftp://host/path"),
    ("smb", "FileServerSource", "smbprotocol", "a Windows (SMB) share: smb://host/share/path"),
    ("webdav", "FileServerSource", "webdav4", "a WebDAV server: webdav://host/path"),
    ("webhdfs", "FileServerSource", "requests", "HDFS over its web API: webhdfs://host/path"),
    ("memory", "FsspecSource", None, "fsspec's in-memory files of this process (for tests)"),
]
for _name, _class, _package, _summary in FSSPEC_SOURCES:
    SOURCES.register(
        _name,
        f"kerapipe.remote_sources:{_class}",
        summary=_summary + (f" (needs {_package})" if _package else ""),
        requires=[_package] if _package else [],
    )

TASKS.register(
    "classification",
    "kerapipe.tasks.classification:ClassificationTask",
    summary="one sub-folder of images per class; softmax head; predictions.csv",
)
TASKS.register(
    "segmentation",
    "kerapipe.tasks.segmentation:SegmentationTask",
    summary="images and same-stem class-index mask PNGs; per-pixel softmax head; mask PNGs "
    "plus predictions.csv",
)
TASKS.register(
    "regression",
    "kerapipe.tasks.regression:RegressionTask",
    summary="images and a CSV of numeric targets; linear head on standardised targets; "
    "predictions.csv in the targets' units",
)

# Models register themselves with @register_model when kerapipe.models is imported
# (their modules import Keras only inside build()); augmentations the same way.
import kerapipe.augmentations  # noqa: E402, F401
import kerapipe.models  # noqa: E402, F401
