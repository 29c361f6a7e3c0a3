"""Errors clexp raises for problems a user can fix; each message says what to do."""


class ClexpError(Exception):
    """Base class of the errors that carry a user-facing explanation."""


class ConfigError(ClexpError, ValueError):
    """The study configuration is invalid; the message names the key path."""


class DataError(ClexpError, FileNotFoundError):
    """The dataset is missing or unreadable; the message names the folder and files."""


class DivergenceError(ClexpError, FloatingPointError):
    """Training produced a non-finite loss; the message names experiment, seed, task, batch."""


class CheckpointError(ClexpError, RuntimeError):
    """A checkpoint is unreadable or belongs to another run; the message says how to rebuild."""


class StateError(ClexpError, ValueError):
    """A method's state read from a checkpoint fails the method's checks (`check_state`); the
    message says what is wrong, and loading the checkpoint names the file and the fix."""


class DiskFullError(ClexpError, OSError):
    """Writing an output failed for lack of space; the message names the file and the fix."""
