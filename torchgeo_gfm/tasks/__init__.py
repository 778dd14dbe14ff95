# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Lightning tasks: GFM continual pretraining, and downstream tasks TorchGeo lacks."""

from .change import ChangeDetection
from .gfm import GFM
from .multilabel import MultiLabelClassification
from .super_resolution import SuperResolution

__all__: tuple[str, ...] = ('GFM',)
__all__ += ('SuperResolution',)
__all__ += ('MultiLabelClassification',)
__all__ += ('ChangeDetection',)
