# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""WHU Aerial building segmentation dataset."""

import os
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar, Literal

from torch import Tensor
from torchgeo.datasets import DatasetNotFoundError
from torchgeo.datasets.utils import Path as PathLike
from torchgeo.datasets.utils import (
    Sample,
    check_integrity,
    download_and_extract_archive,
    extract_archive,
)

from ._image_mask import _ImageMaskDataset
from .errors import ManualDownloadError


class WHUBuilding(_ImageMaskDataset):
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

    Samples: ``image`` ``[3, H, W]`` float (0-255) and ``mask`` ``[H, W]`` long (0/1).

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
    #: MD5 of the zip, or None when the host publishes none (downloads are then unverified)
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
        if checksum and not self.md5:
            raise ValueError(
                'checksum=True but WHUBuilding.md5 is None (the host publishes no '
                'checksum): set WHUBuilding.md5 to a trusted value or use checksum=False'
            )
        super().__init__(root, split, transforms, download, checksum)

    def _load_mask(self, path: Path) -> Tensor:
        """``[H, W]``, as TorchGeo's segmentation datasets return masks."""
        return super()._load_mask(path).squeeze(0)

    def _split_dir(self) -> Path:
        nested = Path(self.root, self.directory, self.split)
        return nested if nested.is_dir() else Path(self.root, self.split)

    def _verify(self) -> None:
        """Verify the integrity of the dataset."""
        # Check if the extracted files already exist
        if any((self._split_dir() / 'image').glob('*.tif')):
            return
        # Check if the zip file has already been downloaded
        archive = os.path.join(self.root, self.filename)
        if os.path.isfile(archive):
            if self.checksum and not check_integrity(archive, self.md5):
                raise RuntimeError(f'Dataset found, but corrupted: {archive}')
            extract_archive(archive, self.root)
            return
        # Check if the user requested to download the dataset
        if not self.download:
            raise DatasetNotFoundError(self)
        # Download and extract the dataset
        download_and_extract_archive(
            self.url,
            self.root,
            filename=self.filename,
            md5=self.md5 if self.checksum else None,
        )

    def _load_files(self) -> list[tuple[Path, ...]]:
        split_dir = self._split_dir()
        images = sorted((split_dir / 'image').glob('*.tif'))
        if not images:  # e.g. an archive without this split
            raise ManualDownloadError(
                self,
                f'expected <root>/{self.directory}/{self.split}/{{image,label}}/*.tif; '
                f'fetch it from {self.url} and unzip it into root',
            )
        pairs: list[tuple[Path, ...]] = [
            (p, split_dir / 'label' / p.name) for p in images
        ]
        lacking = [label for _, label in pairs if not label.is_file()]
        if lacking:
            raise ManualDownloadError(
                self,
                f'{len(lacking)} labels missing, e.g. {lacking[0]}: the copy is '
                'incomplete; re-extract it',
            )
        return pairs
