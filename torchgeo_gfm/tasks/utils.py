# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Figures of the tasks: hand them to the logger, and draw the reconstructions of pretraining."""

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure
from torch import Tensor


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


def plot_reconstruction(
    images: Tensor,
    mask: Tensor,
    x_rec: Tensor,
    mean: Sequence[float],
    std: Sequence[float],
    max_images: int = 4,
) -> Figure:
    """Figure of input, masked input and reconstruction (masked areas filled in).

    Args:
        images: normalised ``[B, C, H, W]``.
        mask: ``[B, h, w]``, 1 = masked, at any resolution dividing the image.
        x_rec: the decoder output ``[B, C, H, W]``.
        mean: channel means used to normalise (first three channels shown as RGB).
        std: channel stds used to normalise.
        max_images: rows of the figure.

    Returns:
        The matplotlib figure.

    .. versionadded:: 0.1
    """
    n = min(max_images, images.shape[0])
    images, x_rec = images[:n].detach().float().cpu(), x_rec[:n].detach().float().cpu()
    factor = images.shape[-1] // mask.shape[-1]
    pixels = mask[:n].detach().float().cpu()
    pixels = pixels.repeat_interleave(factor, 1).repeat_interleave(factor, 2)[:, None]
    chans = min(3, images.shape[1])
    m = torch.tensor(list(mean)[:chans]).view(1, -1, 1, 1)
    s = torch.tensor(list(std)[:chans]).view(1, -1, 1, 1)

    def show(x: Tensor) -> Tensor:
        return (x[:, :chans] * s + m).clamp(0, 1).permute(0, 2, 3, 1)

    panels = {
        'input': show(images),
        'masked input': show(images) * (1 - pixels.permute(0, 2, 3, 1)),
        'reconstruction': show(images * (1 - pixels) + x_rec * pixels),
    }
    fig, axes = plt.subplots(n, 3, figsize=(9, 3 * n), squeeze=False)
    for row in range(n):
        for col, (title, panel) in enumerate(panels.items()):
            axes[row, col].imshow(panel[row].squeeze(-1).numpy())
            axes[row, col].set_axis_off()
            if row == 0:
                axes[row, col].set_title(title)
    fig.tight_layout()
    return fig
