# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Shared base of the scene-classification sources of GeoPile that TorchGeo lacks."""

import os
from collections.abc import Callable, Sequence
from typing import ClassVar

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure
from PIL import Image
from torch import Tensor
from torchgeo.datasets import NonGeoClassificationDataset
from torchgeo.datasets.utils import Path, Sample
from torchvision.datasets import ImageFolder

from .utils import IMG_EXTENSIONS, hash_fraction, open_rgb, pil_to_tensor


def _load(path: str) -> Image.Image:
    """Any image file as 8-bit RGB, by the rule of :mod:`torchgeo_gfm.datasets.utils`."""
    return open_rgb(path)


class SceneClassificationDataset(NonGeoClassificationDataset):
    """Class folders of images, read into float ``[3, H, W]`` tensors in 0-255.

    Subclasses point ``_image_folders`` at their layout. Images of any format, bit
    depth or band count are converted to RGB by the rule in
    :mod:`torchgeo_gfm.datasets.utils`.

    .. versionadded:: 0.1
    """

    #: Split name -> [start, end) of :func:`~torchgeo_gfm.datasets.utils.hash_fraction`
    #: for datasets without an official split.
    hash_splits: ClassVar[dict[str, tuple[float, float]]] = {}

    def _build(
        self,
        folders: Sequence[str],
        split: str,
        transforms: Callable[[Sample], Sample] | None,
        hashed: bool = True,
    ) -> None:
        """Index the class folders of ``folders`` (same class names in each)."""
        bounds = self.hash_splits.get(split, (0.0, 1.0)) if hashed else (0.0, 1.0)

        def in_split(path: Path) -> bool:
            name = os.path.basename(path)
            keep = bounds[0] <= hash_fraction(name) < bounds[1]
            return keep and name.lower().endswith(IMG_EXTENSIONS)

        super().__init__(
            root=folders[0], transforms=transforms, loader=_load, is_valid_file=in_split
        )
        for folder in folders[1:]:  # e.g. train + test for split='all'
            self.samples += self.make_dataset(folder, self.class_to_idx, None, in_split)
        self.imgs = self.samples
        self.targets = [s[1] for s in self.samples]

    @staticmethod
    def make_dataset(
        directory: Path,
        class_to_idx: dict[str, int],
        extensions: str | tuple[str, ...] | None = None,
        is_valid_file: Callable[[str], bool] | None = None,
        allow_empty: bool = True,
    ) -> list[tuple[str, int]]:
        """ImageFolder's indexing, but a class may be empty in a small split.

        Args:
            directory: folder of class folders.
            class_to_idx: class name -> index.
            extensions: allowed suffixes (unused when ``is_valid_file`` is given).
            is_valid_file: file filter.
            allow_empty: ignored, always True.

        Returns:
            (path, class index) pairs.
        """
        return ImageFolder.make_dataset(
            os.fspath(directory), class_to_idx, extensions, is_valid_file, True
        )

    def _load_image(self, index: int) -> tuple[Tensor, Tensor]:
        """Load one image (uint8 read, float returned like TorchGeo) and its class."""
        path, label = self.samples[index]
        image = pil_to_tensor(self.loader(path)).float()
        return image, torch.tensor(label)

    def plot(
        self, sample: Sample, show_titles: bool = True, suptitle: str | None = None
    ) -> Figure:
        """Plot a sample from the dataset.

        Args:
            sample: a sample returned by ``__getitem__``
            show_titles: flag indicating whether to show titles above each panel
            suptitle: optional string to use as a suptitle

        Returns:
            a matplotlib Figure with the rendered sample
        """
        image = sample['image'].permute(1, 2, 0).numpy() / 255
        fig, ax = plt.subplots(figsize=(4, 4))
        ax.imshow(image.clip(0, 1))
        ax.axis('off')
        if show_titles:
            ax.set_title(self._title(sample))
        if suptitle is not None:
            plt.suptitle(suptitle)
        return fig

    def _title(self, sample: Sample) -> str:
        """Class (and prediction) names for the plot title."""
        title = f'Label: {self.classes[int(sample["label"])]}'
        if 'prediction' in sample:
            title += f'\nPrediction: {self.classes[int(sample["prediction"])]}'
        return title
