# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""SpaceNet2 super-resolution: 8-band 1.24 m multispectral -> 0.3 m pan-sharpened."""

from typing import Any, Literal

import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch.utils.data import Dataset, random_split
from torchgeo.datamodules import NonGeoDataModule
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
        low_ids = [self.low._image_id(p) for p in self.low.images]
        high_ids = [self.high._image_id(p) for p in self.high.images]
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
        image = self.low._load_image(self.low.images[index])[0]
        target = self.high._load_image(self.high.images[index])[0]
        return {
            'image': (image / MAX_VALUE).clamp(0, 1),
            'target': (target / MAX_VALUE).clamp(0, 1),
        }


def random_flip_rotate(
    batch: Sample, generator: torch.Generator | None = None
) -> Sample:
    """The same random flip and 90-degree rotation for each sample's image and target.

    Args:
        batch: ``image`` ``[B, C, h, w]`` and ``target`` ``[B, C', H, W]`` (square).
        generator: random generator.

    Returns:
        The augmented batch.

    .. versionadded:: 0.1
    """
    out = {**batch}
    n = batch['image'].shape[0]
    flips = torch.rand(n, generator=generator) < 0.5
    turns = torch.randint(0, 4, (n,), generator=generator)
    for key in ('image', 'target'):
        x = batch[key]
        samples = [
            torch.rot90(x[i].flip(-1) if flips[i] else x[i], int(turns[i]), (-2, -1))
            for i in range(n)
        ]
        out[key] = torch.stack(samples)
    return out


class SpaceNet2SRDataModule(NonGeoDataModule):
    """LightningDataModule for SpaceNet2 super-resolution.

    Like TorchGeo's SpaceNet datamodules, randomly splits SpaceNet2's train split
    (seed 0) into train/val/test (SpaceNet2's own test split is used for prediction).
    Training takes random aligned crops (``patch_size`` input pixels) with flips and
    90-degree rotations, on the device; evaluation sees whole chips.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        batch_size: int = 16,
        patch_size: int = 64,
        val_split_pct: float = 0.1,
        test_split_pct: float = 0.2,
        num_workers: int = 0,
        **kwargs: Any,
    ) -> None:
        """Initialize a new SpaceNet2SRDataModule instance.

        Args:
            batch_size: size of each mini-batch.
            patch_size: size of the training crops, in input (1.24 m) pixels; the
                target crop covers the same ground.
            val_split_pct: fraction of the train split used for validation.
            test_split_pct: fraction of the train split used for testing.
            num_workers: number of workers for parallel data loading.
            **kwargs: passed to :class:`SpaceNet2SuperResolution`.
        """
        super().__init__(
            SpaceNet2SuperResolution,  # type: ignore[arg-type]
            batch_size,
            num_workers,
            **kwargs,
        )
        self.patch_size = patch_size
        self.val_split_pct = val_split_pct
        self.test_split_pct = test_split_pct

    def setup(self, stage: str) -> None:
        """Set up datasets.

        Args:
            stage: 'fit', 'validate', 'test' or 'predict'.
        """
        if stage in ('fit', 'validate', 'test'):
            self.dataset = SpaceNet2SuperResolution(split='train', **self.kwargs)
            fractions = [
                1 - self.val_split_pct - self.test_split_pct,
                self.val_split_pct,
                self.test_split_pct,
            ]
            generator = torch.Generator().manual_seed(0)
            self.train_dataset, self.val_dataset, self.test_dataset = random_split(
                self.dataset, fractions, generator
            )
        if stage == 'predict':
            self.predict_dataset = SpaceNet2SuperResolution(split='test', **self.kwargs)

    def on_after_batch_transfer(self, batch: Sample, dataloader_idx: int) -> Sample:
        """Crop and augment training batches on the device.

        Args:
            batch: a batch of data.
            dataloader_idx: index of the dataloader.

        Returns:
            The batch.
        """
        if self.trainer and self.trainer.training:
            batch = random_flip_rotate(random_crop(batch, self.patch_size))
        return batch

    def plot(self, sample: Sample) -> Figure:
        """Plot a sample: input (bicubic), target and, if present, prediction.

        Args:
            sample: a sample with ``image``, ``target`` and optionally ``prediction``.

        Returns:
            The figure.
        """
        import matplotlib.pyplot as plt

        keys = [k for k in ('image', 'target', 'prediction') if k in sample]
        size = tuple(sample['target'].shape[-2:])
        fig, axs = plt.subplots(1, len(keys), figsize=(4 * len(keys), 4))
        for ax, key in zip(axs, keys):
            x = sample[key].float()
            if key == 'image':
                x = F.interpolate(x[None], size=size, mode='bicubic')[0]
            bands = [4, 2, 1] if x.shape[0] == 8 else [0, 1, 2]
            ax.imshow(x[bands].clamp(0, 1).permute(1, 2, 0).numpy())
            ax.set_title(key.capitalize())
            ax.axis('off')
        return fig


def random_crop(
    batch: Sample, size: int, generator: torch.Generator | None = None
) -> Sample:
    """Crop the same ground from the image and the target (one window per batch).

    Args:
        batch: ``image`` ``[B, C, h, w]`` and ``target`` ``[B, C', H, W]``.
        size: crop size in image pixels; the target crop is ``size * H / h``.
        generator: random generator.

    Returns:
        The cropped batch.

    .. versionadded:: 0.1
    """
    image, target = batch['image'], batch['target']
    h, w = image.shape[-2:]
    if size >= min(h, w):
        return batch
    ratio = target.shape[-2] / h
    top = int(torch.randint(0, h - size + 1, (1,), generator=generator))
    left = int(torch.randint(0, w - size + 1, (1,), generator=generator))
    t_size = round(size * ratio)
    t_top, t_left = round(top * ratio), round(left * ratio)
    return {
        **batch,
        'image': image[..., top : top + size, left : left + size],
        'target': target[..., t_top : t_top + t_size, t_left : t_left + t_size],
    }
