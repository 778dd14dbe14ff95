# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""The one error the scene engine raises for bad input."""


class SceneError(ValueError):
    """Bad input to scene prediction or embedding; the message names it and says what to do.

    Raised before anything is written.

    .. versionadded:: 0.1
    """
