# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""What the image + mask datasets (DSIFN, WHU Aerial) share: indexing, loading, plot."""

from collections.abc import Callable, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor
from torchgeo.datasets import NonGeoDataset
from torchgeo.datasets.utils import Path as PathLike
from torchgeo.datasets.utils import Sample, quantile_normalization

from .utils import read_binary_mask, read_rgb


def _to_display(image: Tensor) -> np.typing.NDArray[np.floating]:
    """A ``[C, H, W]`` image as ``[H, W, C]`` in [0, 1] for ``imshow`` (2-98% stretch)."""
    return quantile_normalization(image.float().permute(1, 2, 0)).numpy()


class _ImageMaskDataset(NonGeoDataset):
    """Files of one or more images (dates) and a binary mask per sample.

    Subclasses set :attr:`splits`, implement :meth:`_verify` (TorchGeo's order: extracted
    files, archive, download) and :meth:`_load_files` (one tuple of image paths, then
    the mask path, per sample).
    """

    splits: tuple[str, ...] = ('train', 'val', 'test')

    def __init__(
        self,
        root: PathLike = 'data',
        split: str = 'train',
        transforms: Callable[[Sample], Sample] | None = None,
        download: bool = False,
        checksum: bool = False,
    ) -> None:
        """Initialize a new dataset instance.

        Args:
            root: root directory where the dataset can be found.
            split: one of :attr:`splits`.
            transforms: a function/transform that takes a sample and returns a
                transformed version.
            download: if True, download the dataset (where the host allows it).
            checksum: if True, check the MD5 of the downloaded files.

        Raises:
            ValueError: if *split* is invalid.
            DatasetNotFoundError: if the data is missing (or, for datasets without
                a direct download, incomplete).
        """
        if split not in self.splits:
            raise ValueError(f'split must be one of {self.splits}, got {split!r}')
        self.root = root
        self.split = split
        self.transforms = transforms
        self.download = download
        self.checksum = checksum
        self._verify()
        self.files = self._load_files()

    def _verify(self) -> None:
        raise NotImplementedError

    def _load_files(self) -> list[tuple[Path, ...]]:
        raise NotImplementedError

    def _load_image(self, paths: Sequence[Path]) -> Tensor:
        """One image ``[3, H, W]``, or the dates stacked ``[T, 3, H, W]``; float 0-255."""
        images = [read_rgb(p).float() for p in paths]
        return images[0] if len(images) == 1 else torch.stack(images)

    def _load_mask(self, path: Path) -> Tensor:
        """The mask as TorchGeo shapes it for this kind of task (see subclasses)."""
        return read_binary_mask(path)

    def __len__(self) -> int:
        """Return the number of samples.

        Returns:
            Length of the dataset.
        """
        return len(self.files)

    def __getitem__(self, index: int) -> Sample:
        """Return one sample: image(s) and mask.

        Args:
            index: index to return.

        Returns:
            ``image`` float (0-255) and ``mask`` long (0/1).
        """
        *images, mask = self.files[index]
        sample: Sample = {
            'image': self._load_image(images),
            'mask': self._load_mask(mask),
        }
        if self.transforms is not None:
            sample = self.transforms(sample)
        return sample

    def plot(
        self, sample: Sample, show_titles: bool = True, suptitle: str | None = None
    ) -> Figure:
        """Plot a sample from the dataset.

        Args:
            sample: a sample returned by :meth:`__getitem__` (optionally with a
                ``prediction`` mask).
            show_titles: whether to show titles above each panel.
            suptitle: optional title of the figure.

        Returns:
            A matplotlib Figure with the rendered sample.
        """
        image = sample['image']
        if image.ndim == 4:  # change detection: one panel per date
            panels = [(f'Image {t + 1}', _to_display(x)) for t, x in enumerate(image)]
        else:
            panels = [('Image', _to_display(image))]
        panels.append(('Mask', sample['mask'].squeeze().numpy()))
        if 'prediction' in sample:
            panels.append(('Prediction', sample['prediction'].squeeze().numpy()))
        fig, axs = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4))
        for ax, (title, array) in zip(axs, panels):
            ax.imshow(array, cmap='gray', vmin=0, vmax=1, interpolation='none')
            ax.axis('off')
            if show_titles:
                ax.set_title(title)
        if suptitle is not None:
            fig.suptitle(suptitle)
        return fig
