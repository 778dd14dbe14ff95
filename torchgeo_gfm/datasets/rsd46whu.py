# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""RSD46-WHU dataset."""

import os
from collections.abc import Callable
from typing import ClassVar, Literal

from torchgeo.datasets.utils import Path, Sample

from .classification import SceneClassificationDataset
from .errors import ManualDownloadError
from .utils import find_images


class RSD46WHU(SceneClassificationDataset):
    """RSD46-WHU: remote sensing scene classification dataset of Wuhan University.

    The `RSD46-WHU <https://github.com/RSIA-LIESMARS-WHU/RSD46-WHU>`__ dataset (Long et
    al., TGRS 2017; Xiao et al., 2017) is one of the five sources of GeoPile.

    Dataset features:

    * ~117,000 RGB images (116,893 in GeoPile) of 256x256 px from Google Earth and
      Tianditu
    * 46 scene classes, 500 to 3,000 images each
    * 0.5 m per pixel for most classes, about 2 m for the others

    Dataset format (as distributed on Baidu Netdisk / Google Drive)::

        root/RSD46-WHU/train/<class>/<image>
        root/RSD46-WHU/test/<class>/<image>

    The official train/test folders are used when present; if the class folders sit
    directly in ``root/RSD46-WHU``, 'train' and 'test' are 85/15% of the images chosen by
    a hash of the file name. 'all' is everything (the GeoPile use).

    Samples: ``{'image': float [3, H, W] in 0-255, 'label': int64}``.

    If you use this dataset in your research, please cite the following papers:

    * https://doi.org/10.1109/TGRS.2016.2645610
    * https://doi.org/10.1109/JSTARS.2017.2738046

    .. versionadded:: 0.1
    """

    directory = 'RSD46-WHU'
    page = 'https://github.com/RSIA-LIESMARS-WHU/RSD46-WHU'
    num_classes = 46
    splits = ('all', 'train', 'test')
    hash_splits: ClassVar[dict[str, tuple[float, float]]] = {
        'train': (0.0, 0.85),
        'test': (0.85, 1.0),
    }

    def __init__(
        self,
        root: Path = 'data',
        split: Literal['all', 'train', 'test'] = 'all',
        transforms: Callable[[Sample], Sample] | None = None,
        download: bool = False,
        checksum: bool = False,
    ) -> None:
        """Initialize a new RSD46WHU instance.

        Args:
            root: root directory where the dataset can be found (see class docstring).
            split: one of 'all', 'train' or 'test'.
            transforms: a function/transform that takes an input sample and returns a
                transformed version.
            download: RSD46-WHU is only on Baidu Netdisk / Google Drive folders (no
                direct link); True only changes the error into download instructions.
            checksum: if True, check that all 46 classes are present (no archive
                checksum is published).

        Raises:
            ValueError: if ``split`` is invalid or ``checksum`` finds classes missing.
            ManualDownloadError: if the images are not found; the message says what to
                fetch and where to put it.
        """
        if split not in self.splits:
            raise ValueError(f'split must be one of {self.splits}, got {split!r}')
        self.root, self.split = root, split
        self.download, self.checksum = download, checksum
        self._verify()
        base = os.path.join(root, self.directory)
        official = self._official_folders(base)
        if official:
            folders = list(official.values()) if split == 'all' else [official[split]]
        else:
            folders = [base]
        self._build(folders, split, transforms, hashed=not official)
        if checksum and len(self.classes) != self.num_classes:
            raise ValueError(
                f'RSD46-WHU under {base!r} has {len(self.classes)} class folders, '
                f'expected {self.num_classes}; re-fetch it from {self.page}'
            )

    @staticmethod
    def _official_folders(base: str) -> dict[str, str]:
        """The official ``train``/``test`` folders (any letter case), if both exist."""
        if not os.path.isdir(base):
            return {}
        names = {d.lower(): d for d in os.listdir(base)}
        if 'train' in names and 'test' in names:
            return {s: os.path.join(base, names[s]) for s in ('train', 'test')}
        return {}

    def _verify(self) -> None:
        """Verify the integrity of the dataset."""
        # Check if the extracted files already exist
        base = os.path.join(self.root, self.directory)
        if self._official_folders(base) or (os.path.isdir(base) and find_images(base)):
            return
        # There is no archive to extract or download (only Baidu Netdisk / Google
        # Drive folders), so whatever *download* says, the user must fetch it
        raise ManualDownloadError(
            self,
            'it cannot be downloaded automatically: it is distributed only through Baidu Netdisk and Google '
            f'Drive folders linked from {self.page} (no direct link). Download it there, '
            'extract the archive(s), and arrange the images as '
            f'{base}/train/<class>/<image> and {base}/test/<class>/<image> (or '
            f'{base}/<class>/<image> without the official split).',
        )
