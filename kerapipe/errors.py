"""The exceptions kerapipe raises for problems a user can fix.

Every message says what is wrong and how to fix it; the CLI prints it without a stack trace.
"""


class KerapipeError(Exception):
    """Base class for errors caused by params, data or files the user controls."""


class ConfigError(KerapipeError):
    """The params file is malformed, has an unknown key, a bad value or an unknown name."""


class DataError(KerapipeError):
    """The data on disk does not match what the params say (missing folders, bad images...)."""


class ModelError(KerapipeError):
    """A model cannot be built, loaded or saved as asked."""


class StorageError(KerapipeError):
    """A file could not be written: the disk or a quota is full, or a size limit was hit."""


class SourceError(KerapipeError):
    """A data source refused or could not do an operation: no credentials, access denied, a
    bucket that does not exist, an endpoint that does not answer, a read-only source."""


class SourceFileNotFoundError(SourceError, FileNotFoundError):
    """A file or folder is missing on a data source. It is a FileNotFoundError too, so code
    that treats a missing local file as absent treats a missing remote one the same way."""
