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


class TrainingError(LntuneError):
    """Training diverged (NaN/inf loss) or was configured inconsistently."""
