# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Make ``torchgeo.models.get_model/get_weight/list_models`` know GFM.

TorchGeo 0.10 has no plugin hook for its registry: :mod:`torchgeo_gfm._compat` (entry 1)
writes it, checked, and says what to do if TorchGeo changes underneath it.
``upstream/torchgeo/gfm-weights.patch`` registers GFM in TorchGeo itself; once TorchGeo
ships it, this module can go.

.. versionadded:: 0.1
"""

from .._compat import register_torchgeo_model
from .gfm_swin import GFM_Weights, gfm_swin_b

#: name under which TorchGeo's registry knows the builder
MODEL_NAME = 'gfm_swin_b'


def register() -> None:
    """Add :func:`gfm_swin_b` and :class:`GFM_Weights` to TorchGeo's model registry.

    Raises:
        torchgeo_gfm._compat.CompatError: (a RuntimeError) if this TorchGeo's registry
            is not the one :mod:`torchgeo_gfm._compat` expects.

    .. versionadded:: 0.1
    """
    register_torchgeo_model(MODEL_NAME, gfm_swin_b, GFM_Weights)
