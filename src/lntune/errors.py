"""Errors users can act on: each message names the file or option at fault and the fix."""


class LntuneError(Exception):
    """Base class for every error lntune raises on bad input."""


class DataError(LntuneError):
    """A data file is missing, malformed or does not match the task."""


class ArchitectureError(LntuneError):
    """The model's normalisation layers could not be mapped."""


class SkinError(LntuneError):
    """A skin is corrupt, incomplete or belongs to another base model."""


class MethodError(LntuneError):
    """A method was asked for with options that cannot apply to this model."""


class InputTooLong(LntuneError):
    """An input to serve has more tokens than the model or the configured limit allows (HTTP 413)."""


class BadInput(LntuneError):
    """An input to serve is malformed: empty batch, text of the wrong type, bad skin name (HTTP 422)."""


class DiskError(LntuneError):
    """A file or folder could not be written: a full disk, a read-only or special file system, no permission."""


class TrainingError(LntuneError):
    """Training diverged (NaN/inf loss) or was configured inconsistently."""


class LntuneWarning(UserWarning):
    """Something users may want to change, though the run goes on (the command line prints it as one line)."""


class FewStepsWarning(LntuneWarning):
    """A run will take so few optimizer steps that it likely under-trains."""
