"""The project's own errors: each carries one line that says what is wrong and how to fix it."""


class BnnamesError(Exception):
    """Base of every error the CLI reports as one line on stderr (exit code 1)."""


class DataError(BnnamesError):
    """A names file that cannot be used (missing, binary, too small, ...)."""


class CheckpointError(BnnamesError):
    """A checkpoint that is missing, corrupt, or not a bnnames checkpoint."""


class CheckpointBusy(CheckpointError):
    """Another bnnames run holds the checkpoint's write lock (bnnames.storage.lock)."""


class ConfigError(BnnamesError):
    """Settings that cannot work together (a bad value, a conflicting resume option, ...)."""


class TrainingDiverged(BnnamesError):
    """The loss became non-finite; the last good checkpoint is kept."""


class DiagnosticsError(BnnamesError):
    """A diagnostics sidecar that cannot be read or written."""
