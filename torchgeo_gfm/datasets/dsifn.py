# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""DSIFN change detection dataset."""

import os
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar, Literal

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from PIL import Image
from torch import Tensor
from torchgeo.datasets import DatasetNotFoundError, NonGeoDataset
from torchgeo.datasets.utils import Path as PathLike
from torchgeo.datasets.utils import Sample, quantile_normalization

from .scene import ManualDownloadError


def load_rgb(path: PathLike) -> Tensor:
    """Load an image file as a float ``[3, H, W]`` tensor (0-255).

    Args:
        path: image file.

    Returns:
        The image.

    .. versionadded:: 0.1
    """
    with Image.open(path) as img:
        array = np.array(img.convert('RGB'))
    return torch.from_numpy(array).permute(2, 0, 1).float()


def load_binary_mask(path: PathLike) -> Tensor:
    """Load a 0/255 (or 0/1) mask as a long ``[1, H, W]`` tensor of 0/1.

    Args:
        path: mask file.

    Returns:
        The mask.

    .. versionadded:: 0.1
    """
    with Image.open(path) as img:
        array = np.array(img.convert('L'))
    return torch.from_numpy(array > 0).long().unsqueeze(0)


def to_display(image: Tensor) -> np.typing.NDArray[np.floating]:
    """A ``[C, H, W]`` image as ``[H, W, C]`` in [0, 1] for ``imshow`` (2-98% stretch).

    Args:
        image: the image.

    Returns:
        The displayable array.

    .. versionadded:: 0.1
    """
    return quantile_normalization(image.float().permute(1, 2, 0)).numpy()


class DSIFN(NonGeoDataset):
    """DSIFN change detection dataset.

    The `DSIFN <https://github.com/GeoZcx/A-deeply-supervised-image-fusion-network-for-change-detection-in-remote-sensing-images>`__
    dataset (Zhang et al., 2020) holds bi-temporal Google Earth images of six Chinese
    cities with manually annotated binary change masks.

    Dataset features:

    * 3,600 train, 340 val and 48 test image pairs of 512x512 px, RGB
    * train/val come from Beijing, Chengdu, Shenzhen, Chongqing and Wuhan (augmented),
      test from Xi'an

    Dataset format (the authors' release, unzipped into *root*)::

        {train,val,test}/t1/<id>.jpg    image before
        {train,val,test}/t2/<id>.jpg    image after
        {train,val,test}/mask/<id>.png  change mask, 0 = no change, 255 = change
                                        (the test masks are .tif)

    Dataset classes:

    0. no change
    1. change

    The authors share the data only through Baidu Cloud, so it cannot be downloaded
    automatically: see :attr:`source`.

    If you use this dataset in your research, please cite:

    * https://doi.org/10.1016/j.isprsjprs.2020.06.003

    .. versionadded:: 0.1
    """

    splits = ('train', 'val', 'test')
    directories = ('t1', 't2', 'mask')
    image_suffixes = ('.jpg', '.jpeg', '.png', '.tif', '.tiff')
    source = (
        'https://github.com/GeoZcx/A-deeply-supervised-image-fusion-network-for-'
        'change-detection-in-remote-sensing-images/tree/master/dataset'
    )
    classes: ClassVar[tuple[str, ...]] = ('no change', 'change')

    def __init__(
        self,
        root: PathLike = 'data',
        split: Literal['train', 'val', 'test'] = 'train',
        transforms: Callable[[Sample], Sample] | None = None,
        download: bool = False,
        checksum: bool = False,
    ) -> None:
        """Initialize a new DSIFN instance.

        Args:
            root: root directory holding ``train/``, ``val/`` and ``test/``.
            split: one of 'train', 'val' or 'test'.
            transforms: a function/transform that takes a sample and returns a
                transformed version.
            download: must be False: the host allows no automatic download.
            checksum: unused (kept for TorchGeo's dataset signature); the authors
                publish no checksums.

        Raises:
            ValueError: if *split* is invalid.
            DatasetNotFoundError: if the data is missing (the message says what to
                fetch and where to put it).
        """
        if split not in self.splits:
            raise ValueError(f'split must be one of {self.splits}, got {split!r}')
        self.root = root
        self.split = split
        self.transforms = transforms
        self.download = download
        self.checksum = checksum
        self.files = self._load_files()

    def __len__(self) -> int:
        """Return the number of image pairs.

        Returns:
            Length of the dataset.
        """
        return len(self.files)

    def __getitem__(self, index: int) -> Sample:
        """Return one image pair and its change mask.

        Args:
            index: index to return.

        Returns:
            ``image`` ``[2, 3, H, W]`` float (0-255) and ``mask`` ``[1, H, W]`` long.
        """
        t1, t2, mask = self.files[index]
        sample: Sample = {
            'image': torch.stack([load_rgb(t1), load_rgb(t2)]),
            'mask': load_binary_mask(mask),
        }
        if self.transforms is not None:
            sample = self.transforms(sample)
        return sample

    def _load_files(self) -> list[tuple[Path, Path, Path]]:
        split_dir = Path(self.root, self.split)
        if not all((split_dir / d).is_dir() for d in self.directories):
            raise self._missing(f'{split_dir} lacks {"/, ".join(self.directories)}/')
        found = {d: self._by_stem(split_dir / d) for d in self.directories}
        stems = sorted(found['t1'])
        if not stems:
            raise self._missing(f'{split_dir / "t1"} holds no images')
        for d in ('t2', 'mask'):
            lacking = [s for s in stems if s not in found[d]]
            if lacking:
                raise self._missing(
                    f'{split_dir / d} lacks {len(lacking)} files of t1/ '
                    f'(e.g. {lacking[0]!r}): is the download complete?'
                )
        return [(found['t1'][s], found['t2'][s], found['mask'][s]) for s in stems]

    def _by_stem(self, directory: Path) -> dict[str, Path]:
        return {
            p.stem: p
            for p in directory.iterdir()
            if p.suffix.lower() in self.image_suffixes
        }

    def _missing(self, reason: str) -> DatasetNotFoundError:
        how = (
            'download=True cannot fetch it: the authors host it only on Baidu Cloud. '
            if self.download
            else ''
        )
        return ManualDownloadError(
            f'DSIFN not found in root={os.fspath(self.root)!r} ({reason}). {how}'
            f'Download it by the link at {self.source}, then unzip it so that '
            '<root>/{train,val,test}/{t1,t2,mask}/ exist.'
        )

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
        panels = [
            ('Image 1', to_display(sample['image'][0])),
            ('Image 2', to_display(sample['image'][1])),
            ('Mask', sample['mask'].squeeze(0).numpy()),
        ]
        if 'prediction' in sample:
            panels.append(('Prediction', sample['prediction'].squeeze(0).numpy()))
        fig, axs = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4))
        for ax, (title, image) in zip(axs, panels):
            ax.imshow(image, cmap='gray', vmin=0, vmax=1, interpolation='none')
            ax.axis('off')
            if show_titles:
                ax.set_title(title)
        if suptitle is not None:
            fig.suptitle(suptitle)
        return fig
