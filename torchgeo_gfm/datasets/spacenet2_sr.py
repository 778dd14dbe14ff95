# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""SpaceNet2 super-resolution: 8-band 1.24 m multispectral -> 0.3 m pan-sharpened."""

import os
import re
from typing import Literal

import numpy as np
import rasterio
import torch
from rasterio.enums import Resampling
from torch import Tensor
from torch.utils.data import Dataset
from torchgeo.datasets import SpaceNet2
from torchgeo.datasets.utils import Path, Sample

#: WorldView-3 chips of SpaceNet2 hold 11-bit values
MAX_VALUE = 2047.0


class SpaceNet2SuperResolution(Dataset[Sample]):
    """Pairs of SpaceNet2 chips: multispectral input and pan-sharpened target.

    Built on two :class:`torchgeo.datasets.SpaceNet2` views of the same chips (so
    download, verification and file discovery are TorchGeo's): ``MUL`` (8 bands,
    1.24 m, read at 163x163) as ``image`` and ``MUL-PanSharpen`` (8 bands) or
    ``RGB-PanSharpen`` (3 bands), 0.3 m, 650x650, as ``target``. Both are scaled to
    [0, 1] by the 11-bit range. Building labels are not loaded.

    If you use this dataset in your research, please cite SpaceNet (see
    :class:`~torchgeo.datasets.SpaceNet2`) and the GFM paper.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        root: Path = 'data',
        split: Literal['train', 'test'] = 'train',
        aois: list[int] | None = None,
        target: Literal['MUL-PanSharpen', 'RGB-PanSharpen'] = 'MUL-PanSharpen',
        download: bool = False,
        checksum: bool = True,
    ) -> None:
        """Initialize a new SpaceNet2SuperResolution instance.

        Args:
            root: root directory of the SpaceNet2 data (as for
                :class:`~torchgeo.datasets.SpaceNet2`).
            split: 'train' or 'test' SpaceNet2 split.
            aois: areas of interest (2 Vegas, 3 Paris, 4 Shanghai, 5 Khartoum); all if
                None.
            target: the pan-sharpened product to predict.
            download: download the data (needs the AWS CLI, as TorchGeo's SpaceNet2).
            checksum: check the MD5 of downloaded tarballs.

        Raises:
            DatasetNotFoundError: if the data is missing and *download* is False.
            ValueError: if the two products do not hold the same chips.
        """
        kwargs = {
            'root': root,
            'split': split,
            'aois': aois,
            'download': download,
            'checksum': checksum,
        }
        self.low = SpaceNet2(image='MUL', **kwargs)  # type: ignore[arg-type]
        self.high = SpaceNet2(image=target, **kwargs)  # type: ignore[arg-type]
        low_ids, high_ids = _chip_ids(self.low), _chip_ids(self.high)
        if low_ids != high_ids:
            raise ValueError(
                f'SpaceNet2 in {root!r}: the MUL and {target} chips differ '
                f'({len(low_ids)} vs {len(high_ids)}); re-extract the tarballs'
            )

    def __len__(self) -> int:
        """Return the number of chips.

        Returns:
            Length of the dataset.
        """
        return len(self.low)

    def __getitem__(self, index: int) -> Sample:
        """Return one chip pair.

        Args:
            index: index to return.

        Returns:
            ``image`` ``[8, 163, 163]`` and ``target`` ``[C, 650, 650]``, in [0, 1].
        """
        image = _read_chip(self.low, index)
        target = _read_chip(self.high, index)
        return {
            'image': (image / MAX_VALUE).clamp(0, 1),
            'target': (target / MAX_VALUE).clamp(0, 1),
        }


def _read_chip(dataset: SpaceNet2, index: int) -> Tensor:
    """Chip *index* of *dataset* at SpaceNet2's chip size, as TorchGeo reads it.

    SpaceNet2's ``__getitem__`` would also rasterise the building labels (unused here);
    this reads the image alone, resampled as TorchGeo does (bilinear, ``chip_size``:
    MUL at 163x163), from its public attributes.
    """
    with rasterio.open(dataset.images[index]) as src:
        shape = dataset.chip_size.get(dataset.image, (src.height, src.width))
        array = src.read(out_shape=(src.count, *shape), resampling=Resampling.bilinear)
    return torch.from_numpy(array.astype(np.float32))


def _chip_ids(dataset: SpaceNet2) -> list[str]:
    """The chip id of each image of *dataset*, by its public ``file_regex``."""
    ids = []
    for path in dataset.images:
        match = re.search(dataset.file_regex, os.path.basename(path))
        ids.append(match.group(1) if match else os.path.basename(path))
    return ids
