# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Augmentations shared by the datamodules (as :mod:`torchgeo.transforms`).

Sample transforms (:class:`RandomPairCrop`) run in the dataset, on the CPU, where
samples of different sizes must be cut to one size before collation; batch transforms
(:class:`BitemporalAugmentation`, :func:`random_crop`, :func:`random_flip_rotate`) run in
``on_after_batch_transfer``, on the device.

.. versionadded:: 0.1
"""

import kornia.augmentation as K
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn
from torchgeo.datasets.utils import Sample


class BitemporalAugmentation(nn.Module):
    """Apply 2-D augmentations to ``[B, T, C, H, W]`` images and their ``[B, 1, H, W]`` mask.

    The dates are folded into channels, so every date and the mask get the same
    geometric transform (Kornia's ``VideoSequential`` refuses masks with fewer frames
    than the video).

    .. versionadded:: 0.1
    """

    def __init__(self, *augmentations: K.AugmentationBase2D) -> None:
        """Initialize a new BitemporalAugmentation instance.

        Args:
            *augmentations: Kornia augmentations for ``[B, C, H, W]`` images; a
                ``K.Normalize`` needs its statistics repeated once per date.
        """
        super().__init__()
        self.aug = K.AugmentationSequential(
            *augmentations, data_keys=None, keepdim=True
        )

    def forward(self, batch: Sample) -> Sample:
        """Augment a batch.

        Args:
            batch: ``image`` ``[B, T, C, H, W]`` and ``mask`` ``[B, 1, H, W]``.

        Returns:
            The augmented batch, same shapes (up to crops).
        """
        t = batch['image'].shape[1]
        batch = {
            **batch,
            'image': rearrange(batch['image'], 'b t c h w -> b (t c) h w'),
        }
        batch = self.aug(batch)
        batch['image'] = rearrange(batch['image'], 'b (t c) h w -> b t c h w', t=t)
        return batch


class RandomPairCrop:
    """Crop the same random window from ``image`` (any leading dimensions) and ``mask``.

    For datasets whose scenes differ in size (OSCD's cities, Vaihingen's tiles), so
    samples are cropped before collation; for a change-detection ``image``
    ``[T, C, H, W]`` both dates get the same window.

    .. versionadded:: 0.1
    """

    def __init__(self, size: tuple[int, int]) -> None:
        """Initialize a new RandomPairCrop instance.

        Args:
            size: (height, width) of the crop; smaller images are zero-padded at the
                bottom and right.
        """
        self.size = size

    def __call__(self, sample: Sample) -> Sample:
        """Crop one sample.

        Args:
            sample: ``image`` ``[..., H, W]`` and ``mask`` ``[..., H, W]``.

        Returns:
            The cropped sample.
        """
        image, mask = sample['image'], sample['mask']
        ch, cw = self.size
        pad_h, pad_w = max(0, ch - image.shape[-2]), max(0, cw - image.shape[-1])
        if pad_h or pad_w:
            image = F.pad(image, (0, pad_w, 0, pad_h))
            mask = F.pad(mask, (0, pad_w, 0, pad_h))
        top = int(torch.randint(0, image.shape[-2] - ch + 1, (1,)))
        left = int(torch.randint(0, image.shape[-1] - cw + 1, (1,)))
        window = (..., slice(top, top + ch), slice(left, left + cw))
        return {**sample, 'image': image[window], 'mask': mask[window]}


def random_crop(
    batch: Sample, size: int, generator: torch.Generator | None = None
) -> Sample:
    """Crop the same ground from an image and a larger target (one window per batch).

    For super-resolution, where ``image`` and ``target`` differ in resolution, so no
    Kornia crop (one size for all keys) fits.

    Args:
        batch: ``image`` ``[B, C, h, w]`` and ``target`` ``[B, C', H, W]``.
        size: crop size in image pixels; the target crop is ``size * H / h``.
        generator: random generator.

    Returns:
        The cropped batch (the batch itself if ``size`` is not smaller than it).

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


def random_flip_rotate(
    batch: Sample, generator: torch.Generator | None = None
) -> Sample:
    """The same random flip and 90-degree rotation for each sample's image and target.

    For super-resolution (``image`` and ``target`` differ in size, see
    :func:`random_crop`).

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
