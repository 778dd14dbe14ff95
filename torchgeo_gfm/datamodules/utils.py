# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""What the datamodules share."""

import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

#: ImageNet statistics on the 0-255 scale of uint8 batches: the normalisation the GFM
#: student and the ImageNet-22k Swin were trained with (TorchGeo's default is 0 / 255).
IMAGENET_MEAN = torch.tensor(IMAGENET_DEFAULT_MEAN) * 255
IMAGENET_STD = torch.tensor(IMAGENET_DEFAULT_STD) * 255
