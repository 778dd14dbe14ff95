# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""WHU Aerial building segmentation dataset."""

import os
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar, Literal

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from torchgeo.datasets import NonGeoDataset
from torchgeo.datasets.utils import Path as PathLike
from torchgeo.datasets.utils import Sample, download_and_extract_archive

from .dsifn import load_binary_mask, load_rgb, to_display
from .scene import ManualDownloadError


class WHUBuilding(NonGeoDataset):
    """WHU Aerial building segmentation dataset.

    The aerial part of the `WHU building dataset
    <http://gpcv.whu.edu.cn/data/building_dataset.html>`__ (Ji et al., 2018): 0.3 m
    aerial images of Christchurch, New Zealand, with building masks, cropped by the
    authors into 512x512 tiles.

    Dataset features:

    * 4,736 train, 1,036 val and 2,416 test tiles of 512x512 px, RGB, 0.3 m
    * ~22,000 buildings

    Dataset format (the authors' zip ``3. The cropped aerial image tiles and raster
    labels.zip``)::

        3. The cropped image tiles and raster labels/{train,val,test}/image/<id>.tif
        3. The cropped image tiles and raster labels/{train,val,test}/label/<id>.tif

    Labels are 0 (background) and 255 (building); ``root/{train,val,test}/`` is
    accepted too.

    Dataset classes:

    0. background
    1. building

    The host publishes no checksum: set :attr:`md5` (e.g. to the MD5 of a copy you
    trust) to have downloads verified.

    If you use this dataset in your research, please cite:

    * https://doi.org/10.1109/TGRS.2018.2858817

    .. versionadded:: 0.1
    """

    url = (
        'http://gpcv.whu.edu.cn/data/'
        '3.%20The%20cropped%20aerial%20image%20tiles%20and%20raster%20labels.zip'
    )
    filename = '3. The cropped aerial image tiles and raster labels.zip'
    #: folder the zip extracts to
    directory = '3. The cropped image tiles and raster labels'
    #: MD5 of the zip; None: the host publishes none, so downloads are not verified
    md5: str | None = None
    splits = ('train', 'val', 'test')
    classes: ClassVar[tuple[str, ...]] = ('background', 'building')

    def __init__(
        self,
        root: PathLike = 'data',
        split: Literal['train', 'val', 'test'] = 'train',
        transforms: Callable[[Sample], Sample] | None = None,
        download: bool = False,
        checksum: bool = False,
    ) -> None:
        """Initialize a new WHUBuilding instance.

        Args:
            root: root directory where the dataset is (or is downloaded to).
            split: one of 'train', 'val' or 'test'.
            transforms: a function/transform that takes a sample and returns a
                transformed version.
            download: if True, download and extract the dataset into *root*.
            checksum: if True, check the MD5 of the downloaded zip against
                :attr:`md5` (slow; requires :attr:`md5`).

        Raises:
            ValueError: if *split* is invalid, or *checksum* is set with no :attr:`md5`.
            DatasetNotFoundError: if the data is missing and *download* is False.
        """
        if split not in self.splits:
            raise ValueError(f'split must be one of {self.splits}, got {split!r}')
        if checksum and not self.md5:
            raise ValueError(
                'checksum=True but WHUBuilding.md5 is None (the host publishes no '
                'checksum): set WHUBuilding.md5 to a trusted value or use checksum=False'
            )
        self.root = root
        self.split = split
        self.transforms = transforms
        self.download = download
        self.checksum = checksum
        self.files = self._verify()

    def __len__(self) -> int:
        """Return the number of tiles.

        Returns:
            Length of the dataset.
        """
        return len(self.files)

    def __getitem__(self, index: int) -> Sample:
        """Return one tile and its building mask.

        Args:
            index: index to return.

        Returns:
            ``image`` ``[3, H, W]`` float (0-255) and ``mask`` ``[H, W]`` long (0/1).
        """
        image, label = self.files[index]
        sample: Sample = {
            'image': load_rgb(image),
            'mask': load_binary_mask(label).squeeze(0),
        }
        if self.transforms is not None:
            sample = self.transforms(sample)
        return sample

    def _split_dir(self) -> Path:
        nested = Path(self.root, self.directory, self.split)
        return nested if nested.is_dir() else Path(self.root, self.split)

    def _verify(self) -> list[tuple[Path, Path]]:
        files = self._load_files()
        if files:
            return files
        if self.download:
            download_and_extract_archive(
                self.url,
                self.root,
                filename=self.filename,
                md5=self.md5 if self.checksum else None,
            )
            files = self._load_files()
            if files:
                return files
        raise ManualDownloadError(
            f'WHU Aerial building ({self.split}) not found in '
            f'root={os.fspath(self.root)!r}: expected <root>/{self.directory}/'
            f'{self.split}/{{image,label}}/*.tif'
            + (
                ''
                if self.download
                else '. Use download=True, or fetch it yourself from '
                f'{self.url} and unzip it into root'
            )
        )

    def _load_files(self) -> list[tuple[Path, Path]]:
        split_dir = self._split_dir()
        images = sorted((split_dir / 'image').glob('*.tif'))
        pairs = [(p, split_dir / 'label' / p.name) for p in images]
        lacking = [label for _, label in pairs if not label.is_file()]
        if lacking:
            raise ManualDownloadError(
                f'{len(lacking)} labels missing, e.g. {lacking[0]}: the WHU Aerial '
                f'copy in root={os.fspath(self.root)!r} is incomplete; re-extract it'
            )
        return pairs

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
            ('Image', to_display(sample['image'])),
            ('Mask', sample['mask'].squeeze().numpy()),
        ]
        if 'prediction' in sample:
            panels.append(('Prediction', sample['prediction'].squeeze().numpy()))
        fig, axs = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4))
        for ax, (title, image) in zip(axs, panels):
            ax.imshow(image, cmap='gray', vmin=0, vmax=1, interpolation='none')
            ax.axis('off')
            if show_titles:
                ax.set_title(title)
        if suptitle is not None:
            fig.suptitle(suptitle)
        return fig
