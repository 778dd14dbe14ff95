# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""DSIFN change detection dataset."""

from collections.abc import Callable
from pathlib import Path
from typing import ClassVar, Literal

from torchgeo.datasets.utils import Path as PathLike
from torchgeo.datasets.utils import Sample

from ._image_mask import _ImageMaskDataset
from .errors import ManualDownloadError


class DSIFN(_ImageMaskDataset):
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

    Samples: ``image`` ``[2, 3, H, W]`` float (0-255) and ``mask`` ``[1, H, W]`` long.

    Dataset classes:

    0. no change
    1. change

    The authors share the data only through Baidu Cloud, so it cannot be downloaded
    automatically: see ``source``.

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
            ManualDownloadError: if the data is missing or incomplete (the message
                says what to fetch and where to put it).
        """
        super().__init__(root, split, transforms, download, checksum)

    def _verify(self) -> None:
        """Verify the integrity of the dataset."""
        # Check if the extracted files already exist
        split_dir = Path(self.root, self.split)
        if all((split_dir / d).is_dir() for d in self.directories):
            return
        # There is no archive to extract or download: the authors share only a
        # Baidu Cloud folder, so whatever *download* says, the user must fetch it
        raise self._missing(f'{split_dir} lacks {"/, ".join(self.directories)}/')

    def _load_files(self) -> list[tuple[Path, ...]]:
        split_dir = Path(self.root, self.split)
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
        return [tuple(found[d][s] for d in self.directories) for s in stems]

    def _by_stem(self, directory: Path) -> dict[str, Path]:
        return {
            p.stem: p
            for p in directory.iterdir()
            if p.suffix.lower() in self.image_suffixes
        }

    def _missing(self, reason: str) -> ManualDownloadError:
        how = (
            'download=True cannot fetch it: the authors host it only on Baidu Cloud. '
            if self.download
            else ''
        )
        return ManualDownloadError(
            self,
            f'{reason}. {how}Download it by the link at {self.source}, then unzip it '
            'so that <root>/{train,val,test}/{t1,t2,mask}/ exist.',
        )
