# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""MLRSNet dataset."""

import csv
import glob
import os
import zipfile
from collections.abc import Callable
from typing import ClassVar, Literal

import torch
from torch import Tensor
from torchgeo.datasets.utils import Path, Sample

from .classification import SceneClassificationDataset
from .errors import ManualDownloadError


class MLRSNet(SceneClassificationDataset):
    """MLRSNet: multi-label high-resolution remote sensing scene dataset.

    The `MLRSNet <https://doi.org/10.1016/j.isprsjprs.2020.09.020>`__ dataset (Qi et al.,
    ISPRS J. 2020) is one of the five sources of GeoPile.

    Dataset features:

    * 109,161 RGB images of 256x256 px, ~10 m to 0.1 m per pixel (Google Earth)
    * 46 scene categories (1,500 to 3,000 images each)
    * 60 multi-labels per image (1 to 13 positive)

    Dataset format (Mendeley Data `7j9bv9vwsx <https://data.mendeley.com/datasets/7j9bv9vwsx/3>`__,
    labels also on `GitHub <https://github.com/cugbrs/MLRSNet>`__)::

        root/MLRSNet/Images/<category>/<category>_00001.jpg
        root/MLRSNet/Labels/<category>.csv   (columns: image, then the 60 labels as 0/1)

    There is no official split: 'train', 'val' and 'test' are 70/10/20% of the images,
    chosen by a hash of the file name (stable across machines); 'all' is everything (the
    GeoPile use).

    Samples: ``{'image': float [3, 256, 256] in 0-255, 'label': int64}``; with
    ``task='multilabel'``, ``label`` is the int64 multi-hot vector of the 60 labels
    (``labels``).

    If you use this dataset in your research, please cite the following paper:

    * https://doi.org/10.1016/j.isprsjprs.2020.09.020

    .. versionadded:: 0.1
    """

    directory = 'MLRSNet'
    #: the archive Mendeley's "Download All" button gives for version 3
    archive_pattern = '7j9bv9vwsx-*.zip'
    page = 'https://data.mendeley.com/datasets/7j9bv9vwsx/3'
    labels_page = 'https://github.com/cugbrs/MLRSNet/tree/master/labels'
    num_images = 109_161
    num_categories = 46
    splits = ('all', 'train', 'val', 'test')
    hash_splits: ClassVar[dict[str, tuple[float, float]]] = {
        'train': (0.0, 0.7),
        'val': (0.7, 0.8),
        'test': (0.8, 1.0),
    }

    def __init__(
        self,
        root: Path = 'data',
        split: Literal['all', 'train', 'val', 'test'] = 'all',
        task: Literal['multiclass', 'multilabel'] = 'multiclass',
        transforms: Callable[[Sample], Sample] | None = None,
        download: bool = False,
        checksum: bool = False,
    ) -> None:
        """Initialize a new MLRSNet instance.

        Args:
            root: root directory where the dataset can be found (see class docstring).
            split: one of 'all', 'train', 'val' or 'test'.
            task: 'multiclass' (label = category) or 'multilabel' (60 multi-labels).
            transforms: a function/transform that takes an input sample and returns a
                transformed version.
            download: MLRSNet has no direct download link; True only changes the error
                message into download instructions.
            checksum: if True, check the dataset is complete (109,161 images in 46
                categories, the published counts; no archive checksum is published).

        Raises:
            ValueError: if ``split`` or ``task`` is invalid, or ``checksum`` finds the
                dataset incomplete.
            ManualDownloadError: if the images (or, for 'multilabel', the labels) are
                not found; the message says what to fetch and where to put it.
        """
        if split not in self.splits:
            raise ValueError(f'split must be one of {self.splits}, got {split!r}')
        if task not in ('multiclass', 'multilabel'):
            raise ValueError(f"task must be 'multiclass' or 'multilabel', got {task!r}")
        self.root, self.split, self.task = root, split, task
        self.download, self.checksum = download, checksum
        self._verify()
        images = self._find_images(os.path.join(root, self.directory))
        assert images is not None  # _verify found or extracted them
        self._build([images], split, transforms)
        if checksum:
            self._check_complete()
        self.labels: list[str] = []
        self._multilabels: dict[str, Tensor] = {}
        if task == 'multilabel':
            self._read_labels(os.path.join(os.path.dirname(images), 'Labels'))

    def _verify(self) -> None:
        """Verify the integrity of the dataset."""
        # Check if the extracted files already exist
        base = os.path.join(self.root, self.directory)
        if self._find_images(base) is not None:
            return
        # Check if the Mendeley zip has already been downloaded (by hand); its
        # per-category .rar files, once present, must be extracted by the user
        rars = glob.glob(os.path.join(base, '**', '*.rar'), recursive=True)
        archives = sorted(
            glob.glob(os.path.join(self.root, self.archive_pattern))
            + glob.glob(os.path.join(base, self.archive_pattern))
        )
        if archives and not rars:
            with zipfile.ZipFile(archives[-1]) as archive:  # strips '..' and '/'
                archive.extractall(base)
            if self._find_images(base) is not None:
                return
        # Mendeley serves no stable file URL, so whatever *download* says, the user
        # must fetch it
        raise ManualDownloadError(self, self._instructions(base))

    @staticmethod
    def _find_images(base: str) -> str | None:
        """``Images`` with category folders of JPEGs, at ``base`` or one level down."""
        for images in [os.path.join(base, 'Images'), *glob.glob(f'{base}/*/Images')]:
            if glob.glob(os.path.join(images, '*', '*.jpg')):
                return images
        return None

    def _instructions(self, base: str) -> str:
        """Exact manual-download steps (Mendeley serves RAR parts, no stable file URL)."""
        rars = glob.glob(os.path.join(base, '**', '*.rar'), recursive=True)
        if rars:
            folder = os.path.dirname(rars[0])
            return (
                f'found {len(rars)} .rar archives in {folder!r} but no extracted '
                'images; extract each in place so that Images/<category>/*.jpg exists, '
                f'e.g. `cd {folder} && for f in *.rar; do unrar x -o- "$f"; done`'
            )
        return (
            'it cannot be downloaded automatically: Mendeley Data serves it as per-category RAR files with no stable direct link. Download version 3 '
            f'from {self.page} ("Download All" gives 7j9bv9vwsx-3.zip), put the zip in '
            f'{os.fspath(self.root)!r} (it is extracted for you) or extract it to '
            f'{os.path.join(os.fspath(self.root), self.directory)!r}, then extract the '
            'per-category .rar files in Images/ so that Images/<category>/*.jpg and '
            'Labels/<category>.csv exist.'
        )

    def _check_complete(self) -> None:
        """Compare with the published counts (only meaningful for split='all')."""
        found = (len(self.classes), len(self))
        expected = (self.num_categories, self.num_images)
        if self.split == 'all' and found != expected:
            raise ValueError(
                f'MLRSNet under {os.fspath(self.root)!r} has {found[1]} images in '
                f'{found[0]} categories, expected {expected[1]} in {expected[0]}; some '
                f'archives may be missing or partly extracted (see {self.page})'
            )

    def _read_labels(self, folder: str) -> None:
        """Read the 60 multi-labels of every image from ``Labels/<category>.csv``."""
        files = sorted(glob.glob(os.path.join(folder, '*.csv')))
        if not files:
            raise ManualDownloadError(
                self,
                f'MLRSNet multi-labels not found in {folder!r}: put the Labels/*.csv of '
                f'the Mendeley release ({self.page}) or of {self.labels_page} there',
            )
        for file in files:
            with open(file, newline='', encoding='utf-8-sig') as f:
                rows = csv.reader(f)
                header = next(rows)
                self.labels = self.labels or [h.strip() for h in header[1:]]
                for row in rows:
                    if row:
                        values = [int(float(v)) for v in row[1:]]
                        self._multilabels[row[0].strip()] = torch.tensor(values)
        names = {os.path.basename(p) for p, _ in self.samples}
        missing = sorted(names - self._multilabels.keys())
        if missing:
            raise ValueError(
                f'MLRSNet: {len(missing)} images have no row in {folder!r}/*.csv '
                f'(e.g. {missing[0]}); re-fetch the Labels folder'
            )

    def __getitem__(self, index: int) -> Sample:
        """Return an image and its category or multi-labels.

        Args:
            index: index to return

        Returns:
            the sample
        """
        image, label = self._load_image(index)
        if self.task == 'multilabel':
            label = self._multilabels[os.path.basename(self.samples[index][0])]
        sample = {'image': image, 'label': label}
        if self.tg_transforms is not None:
            sample = self.tg_transforms(sample)
        return sample

    def _title(self, sample: Sample) -> str:
        """Category, or the positive multi-labels, for the plot title."""
        if self.task == 'multiclass':
            return super()._title(sample)
        positive = torch.nonzero(sample['label']).flatten().tolist()
        return ', '.join(self.labels[i] for i in positive)
