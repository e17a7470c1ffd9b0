"""Errors that carry a message meant for the user (what went wrong, where, what to do).

Every package raises a subclass of :class:`StudioError` for bad input; the CLI prints the message
without a traceback and the GUI shows it in a dialog.
"""


class StudioError(Exception):
    """Base class of user-facing errors."""


class ImageLoadError(StudioError):
    """An image file could not be read (missing, not an image, truncated, too large)."""


class CheckpointError(StudioError):
    """A checkpoint file is missing, truncated, corrupt or of the wrong architecture."""
