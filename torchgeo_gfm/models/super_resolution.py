# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""The super-resolution network: a timm backbone's features and an upsampling head.

.. versionadded:: 0.1
"""

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class UpsamplingHead(nn.Module):
    """Fuse multi-scale backbone features and upsample them to the output resolution.

    Each feature map is projected to ``channels`` (1x1 conv), resized to the finest one
    and summed (an FPN without top-down convs); then ``conv 3x3 -> PixelShuffle(2)``
    blocks reach ``scale`` times the input size. The result is added to a bicubic
    upsampling of the input mixed to the output bands by a 1x1 conv, so the network
    learns the high-frequency residual.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        feature_channels: list[int],
        feature_reduction: int,
        in_channels: int,
        out_channels: int,
        scale: int,
        channels: int = 64,
    ) -> None:
        """Initialize a new UpsamplingHead.

        Args:
            feature_channels: channels of each backbone feature map.
            feature_reduction: stride of the finest feature map w.r.t. the input.
            in_channels: bands of the low-resolution input.
            out_channels: bands of the high-resolution output.
            scale: output size / input size.
            channels: width of the head.
        """
        super().__init__()
        self.scale = scale
        self.lateral = nn.ModuleList(
            nn.Conv2d(c, channels, 1) for c in feature_channels
        )
        self.fuse = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1), nn.GELU()
        )
        steps = max(0, round(math.log2(feature_reduction * scale)))
        self.up = nn.Sequential(
            *(
                nn.Sequential(
                    nn.Conv2d(channels, 4 * channels, 3, padding=1),
                    nn.PixelShuffle(2),
                    nn.GELU(),
                )
                for _ in range(steps)
            )
        )
        self.out = nn.Conv2d(channels, out_channels, 3, padding=1)
        self.skip = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: Tensor, features: list[Tensor]) -> Tensor:
        """Upsample.

        Args:
            x: the low-resolution input ``[B, C_in, H, W]``.
            features: backbone features, NCHW, finest first.

        Returns:
            ``[B, C_out, scale * H, scale * W]``.
        """
        size = features[0].shape[-2:]
        y = sum(
            F.interpolate(conv(f), size=size, mode='bilinear', align_corners=False)
            for conv, f in zip(self.lateral, features)
        )
        y = self.up(self.fuse(torch.as_tensor(y)))
        out_size = (x.shape[-2] * self.scale, x.shape[-1] * self.scale)
        if y.shape[-2:] != out_size:
            y = F.interpolate(y, size=out_size, mode='bilinear', align_corners=False)
        base = F.interpolate(x, size=out_size, mode='bicubic', align_corners=False)
        return self.skip(base) + self.out(y)


class SuperResolutionModel(nn.Module):
    """A timm backbone's multi-scale features and an :class:`UpsamplingHead`.

    .. versionadded:: 0.1
    """

    #: inputs are padded to a multiple of this (covers patch 4 and Swin/ResNet strides)
    pad_to = 32

    def __init__(
        self,
        backbone: Any,
        in_channels: int,
        out_channels: int,
        scale: int,
        channels: int = 64,
    ) -> None:
        """Initialize a new SuperResolutionModel.

        Args:
            backbone: a timm model with ``feature_info`` and ``forward_intermediates``.
            in_channels: bands of the low-resolution input.
            out_channels: bands of the high-resolution output.
            scale: output size / input size.
            channels: width of the head.
        """
        super().__init__()
        self.backbone: Any = backbone
        info: list[dict[str, Any]] = backbone.feature_info
        self.head = UpsamplingHead(
            [f['num_chs'] for f in info],
            info[0]['reduction'],
            in_channels,
            out_channels,
            scale,
            channels,
        )

    def forward(self, x: Tensor) -> Tensor:
        """Super-resolve a batch.

        Args:
            x: ``[B, C_in, H, W]``, any H and W.

        Returns:
            ``[B, C_out, scale * H, scale * W]``.
        """
        h, w = x.shape[-2:]
        pad_h, pad_w = -h % self.pad_to, -w % self.pad_to
        padded = F.pad(x, (0, pad_w, 0, pad_h), mode='replicate')
        features = self.backbone.forward_intermediates(padded, intermediates_only=True)
        y = self.head(padded, features)
        s = self.head.scale
        return y[..., : h * s, : w * s]
