# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""The one error the scene engine raises for bad input, and what its messages quote."""


class SceneError(ValueError):
    """Bad input to scene prediction or embedding; the message names it and says what to do.

    Raised before anything is written.

    .. versionadded:: 0.1
    """


def short(value: object) -> str:
    """The repr of a value a message quotes, cut at 120 characters.

    Args:
        value: what was given or found.

    Returns:
        Its repr, shortened.

    .. versionadded:: 0.2
    """
    text = repr(value)
    return text if len(text) <= 120 else f'{text[:117]}...'


def first_line(error: BaseException) -> str:
    """The first line of another library's error (at most 300 characters).

    Args:
        error: the exception.

    Returns:
        Its first line, or '' if it has no message.

    .. versionadded:: 0.2
    """
    lines = str(error).splitlines()
    return lines[0][:300] if lines else ''


def gdal_cause(error: BaseException) -> str:
    """GDAL's own message, which rasterio often chains under a generic one.

    Args:
        error: a rasterio (or OS) error.

    Returns:
        The message of the innermost cause, or its type's name.

    .. versionadded:: 0.2
    """
    while error.__cause__ is not None:
        error = error.__cause__
    return str(error).strip() or type(error).__name__
