# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""TorchGeo 0.10 workaround: GFM weights for smp's ``tu-gfm_swin_base`` encoder.

TorchGeo 0.10's ``SemanticSegmentation`` and ``ChangeDetection`` load a weights enum's state
dict strictly into smp's encoder (``self.model.encoder.load_state_dict(state_dict)``). For a
``tu-`` backbone that encoder is smp's ``TimmUniversalEncoder``: it holds timm's feature
extractor as ``model``, whose names are not timm's (``model.layers_0...``, no final ``norm``
nor ``head``), so timm-named weights fail as missing and unexpected keys. TorchGeo's own
``tu-`` backbones fail the same way.

``nn.Module.load_state_dict`` hands a nested module only the keys under its prefix, plus
``state_dict._metadata[<its prefix>]``. So :func:`loadable_state_dict` also puts the weights
in ``_metadata['model']``, and the hooks :func:`accept_timm_names` registers on the feature
extractor take them from there under its own names and clear the timm names from the
encoder's unexpected keys. The state dict's keys stay timm's: it loads into the timm model
(TorchGeo's ``Classification``) as before, and pickles as a plain ``OrderedDict``.

Drop this module once TorchGeo ships ``upstream/torchgeo/tu-encoder-weights.patch`` (its
tasks rename timm weights for ``tu-`` encoders); ``tests/models/test_smp_encoder.py`` fails
on the first TorchGeo that no longer needs it.

.. versionadded:: 0.2
"""

import re
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

# key of the weights in ``_metadata['model']``
_CARRIED = 'torchgeo_gfm.weights'
# timm's stage names in its feature extractor (``flatten_sequential``: layers_0)
_STAGE = re.compile(r'^layers\.(\d+)\.')
# what timm's feature extractor leaves out of the model
_NOT_IN_EXTRACTOR = ('norm.', 'head.')
# smp's TimmUniversalEncoder holds the timm model as ``model``
_ENCODER_PREFIX = 'model'


def loadable_state_dict(state_dict: Mapping[str, Tensor]) -> 'OrderedDict[str, Tensor]':
    """Timm-named GFM weights that also load into smp's ``tu-gfm_swin_base`` encoder.

    A TorchGeo 0.10 workaround (its ``SemanticSegmentation`` and ``ChangeDetection`` load
    weights enums strictly into smp's encoder, under the feature extractor's names), dropped
    once TorchGeo ships ``upstream/torchgeo/tu-encoder-weights.patch``; see
    ``torchgeo_gfm/models/smp_encoder.py``.

    Args:
        state_dict: weights in timm ``gfm_swin_base`` key names.

    Returns:
        An ``OrderedDict`` of the same tensors, which also carries them in its
        ``_metadata`` for the feature extractor
        (:func:`~torchgeo_gfm.models.smp_encoder.accept_timm_names`).

    .. versionadded:: 0.1
    """
    out: OrderedDict[str, Tensor] = OrderedDict(state_dict)
    out._metadata = {_ENCODER_PREFIX: {_CARRIED: dict(state_dict)}}  # type: ignore[attr-defined]
    return out


def _take_carried(
    module: nn.Module,
    state_dict: dict[str, Tensor],
    prefix: str,
    local_metadata: Mapping[str, Any],
    *args: Any,
) -> None:
    """Add the carried timm-named weights under the feature extractor's names."""
    carried = local_metadata.get(_CARRIED)
    if carried is None:
        return
    own = module.state_dict()
    taken = set()
    for key, value in carried.items():
        name = _STAGE.sub(r'layers_\1.', key)
        if name in own:
            state_dict.setdefault(prefix + name, value)
        if name in own or key.startswith(_NOT_IN_EXTRACTOR):
            taken.add(key)  # any other key stays unexpected
    module.__dict__['_gfm_carried'] = taken


def _forget_carried(module: nn.Module, incompatible: Any) -> None:
    """The timm names of the carried weights are not unexpected keys of the encoder."""
    carried = module.__dict__.pop('_gfm_carried', set())
    incompatible.unexpected_keys[:] = [
        k for k in incompatible.unexpected_keys if k not in carried
    ]


def accept_timm_names(extractor: nn.Module) -> None:
    """Let *extractor* take the weights :func:`loadable_state_dict` carries.

    Register before any hook that fits the weights (they must be in the state dict first).

    Args:
        extractor: the feature extractor of ``gfm_swin_base(features_only=True)``.

    .. versionadded:: 0.2
    """
    extractor.register_load_state_dict_pre_hook(_take_carried)
    extractor.register_load_state_dict_post_hook(_forget_carried)
