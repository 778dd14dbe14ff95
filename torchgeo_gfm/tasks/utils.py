# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Helpers shared by the tasks."""

import os
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.figure import Figure


def takes_figures(logger: Any) -> bool:
    """Whether *logger* takes figures (TensorBoard-like ``add_figure`` or ``log_image``).

    Args:
        logger: a Lightning logger, or None.

    Returns:
        True if :func:`log_figure` hands figures to it.

    .. versionadded:: 0.1
    """
    experiment = getattr(logger, 'experiment', None)
    return hasattr(experiment, 'add_figure') or hasattr(logger, 'log_image')


def log_figure(
    logger: Any,
    tag: str,
    fig: Figure,
    step: int,
    directory: str | os.PathLike[str] | None = None,
) -> None:
    """Hand *fig* to a Lightning logger that takes figures, optionally save it, close it.

    TensorBoard-like loggers get ``experiment.add_figure``, W&B-like ones ``log_image``;
    loggers that take no figures (CSV) only get the PNG, if a *directory* is given.

    Args:
        logger: a Lightning logger, or None.
        tag: name of the figure; ``/`` becomes ``_`` in the file name.
        fig: the figure; it is closed afterwards.
        step: global step, also in the file name ``<tag>_<step:07d>.png``.
        directory: where to save the PNG, or None for no file.

    .. versionadded:: 0.1
    """
    experiment: Any = getattr(logger, 'experiment', None)
    if hasattr(experiment, 'add_figure'):
        experiment.add_figure(tag, fig, global_step=step)
    elif takes_figures(logger):
        logger.log_image(tag, [fig], step=step)
    if directory is not None:
        path = Path(directory, f'{tag.replace("/", "_")}_{step:07d}.png')
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=80)
    plt.close(fig)
