# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Make ``torchgeo.models.get_model/get_weight/list_models`` know GFM.

TorchGeo 0.10 has no plugin hook: its registry is two private dicts in
``torchgeo.models.api``. This is the only place that touches them; it checks the result and
fails loudly at import if TorchGeo changes underneath it.

.. versionadded:: 0.1
"""

# upstream/torchgeo/gfm-weights.patch registers GFM in TorchGeo itself; once TorchGeo ships
# it, this module (and the private-dict access) can go.
from torchgeo.models import api

from .gfm_swin import GFM_Weights, gfm_swin_b

#: name under which TorchGeo's registry knows the builder
MODEL_NAME = 'gfm_swin_b'


def register() -> None:
    """Add :func:`gfm_swin_b` and :class:`GFM_Weights` to TorchGeo's model registry.

    Raises:
        RuntimeError: if ``torchgeo.models.api`` no longer has the registry this expects.

    .. versionadded:: 0.1
    """
    models, weights = getattr(api, '_model', None), getattr(api, '_model_weights', None)
    if not isinstance(models, dict) or not isinstance(weights, dict):
        raise RuntimeError(  # noqa: TRY004 (a broken environment, not a bad argument)
            'torchgeo.models.api._model/_model_weights are gone: this torchgeo version is '
            'not supported by torchgeo-gfm (needs torchgeo>=0.10.1,<0.11).'
        )
    models[MODEL_NAME] = gfm_swin_b
    weights[MODEL_NAME] = GFM_Weights
    weights[gfm_swin_b] = GFM_Weights
    member = GFM_Weights.GEOPILE_RGB_GFM
    if (
        api.get_weight(str(member)) is not member
        or api.get_model_weights(MODEL_NAME) is not GFM_Weights
        or MODEL_NAME not in api.list_models()
    ):
        raise RuntimeError(
            "torchgeo.models' registry ignores its private dicts: this torchgeo version is "
            'not supported by torchgeo-gfm (needs torchgeo>=0.10.1,<0.11).'
        )
