# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""torchgeo-gfm: GFM, geospatial foundation models via continual pretraining, for TorchGeo.

Importing the package registers the ``gfm_swin_base`` architecture with timm (so smp's
``tu-gfm_swin_base`` encoder and TorchGeo's tasks find it) and GFM with ``torchgeo.models``.
"""

from . import models

__version__ = '0.1.0'

__all__ = ('__version__', 'models')
