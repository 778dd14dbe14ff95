# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt

from torchgeo_gfm.tasks.utils import log_figure


class ImageLogger:
    """Takes figures the way W&B's Lightning logger does."""

    def __init__(self) -> None:
        self.images: list[tuple[str, list[Any], int]] = []

    def log_image(self, key: str, images: list[Any], step: int) -> None:
        self.images.append((key, images, step))


def test_log_figure_image_logger_and_png(tmp_path: Path) -> None:
    logger = ImageLogger()
    fig = plt.figure()
    log_figure(logger, 'val/x', fig, 3, tmp_path / 'png')
    assert logger.images == [('val/x', [fig], 3)]
    assert [p.name for p in (tmp_path / 'png').iterdir()] == ['val_x_0000003.png']
    assert not plt.fignum_exists(fig.number)


def test_log_figure_without_logger_or_directory() -> None:
    fig = plt.figure()
    log_figure(None, 'x', fig, 0)
    assert not plt.fignum_exists(fig.number)
