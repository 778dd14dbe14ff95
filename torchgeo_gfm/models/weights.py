# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""GFM weights in TorchGeo's vocabulary, and the ``gfm_swin_b`` builder.

.. versionadded:: 0.1
"""

import os
from typing import Any

import timm
import torchvision.transforms.v2 as T
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torch import Tensor, nn
from torchvision.models._api import Weights, WeightsEnum

from .download import GFM_URL, download_url, student_weights
from .swin import load_gfm_weights, loadable_state_dict

#: scale 0-255 to 0-1, then ImageNet normalisation (what the student saw in pretraining)
_gfm_transforms = nn.Sequential(
    T.Normalize(mean=[0.0], std=[255.0]),
    T.Normalize(mean=list(IMAGENET_DEFAULT_MEAN), std=list(IMAGENET_DEFAULT_STD)),
)


class GFM_Weights(WeightsEnum):
    """GFM Swin-B weights (student of continual pretraining on GeoPile).

    ``get_state_dict()`` returns the student in timm ``gfm_swin_base`` key names (the
    published file is the authors' full training checkpoint; only the student is kept).

    If you use these weights, please cite https://arxiv.org/abs/2302.04476.

    .. versionadded:: 0.1
    """

    GEOPILE_RGB_GFM = Weights(
        url=GFM_URL,
        transforms=_gfm_transforms,
        meta={
            'dataset': 'GeoPile',
            'in_chans': 3,
            'model': 'gfm_swin_base',
            'publication': 'https://arxiv.org/abs/2302.04476',
            'repo': 'https://github.com/mmendiet/GFM',
            'bands': ('R', 'G', 'B'),
            'ssl_method': 'gfm',
            'license': 'Apache-2.0',
            'img_size': 192,
            'window_size': 6,
            # SHA-256 of the published gfm.pth; None: not pinned here (the Hub route checks
            # the file against the SHA-256 the Hub advertises for it)
            'sha256': None,
        },
    )

    def get_state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Download the authors' checkpoint and return the student's weights.

        Args:
            *args: ``progress`` (bool) may be given positionally, as in torchvision.
            **kwargs: ``progress`` and ``check_hash`` (verify ``meta['sha256']`` where it
                is set); torchvision's other arguments (``weights_only``...) are accepted
                and ignored, the file is always read with ``weights_only=True``.

        Returns:
            The state dict in timm ``gfm_swin_base`` key names; it also loads into smp's
            ``tu-gfm_swin_base`` encoder (see
            :func:`~torchgeo_gfm.models.loadable_state_dict`).
        """
        progress = bool(kwargs.get('progress', args[0] if args else True))
        sha256 = self.meta.get('sha256') if kwargs.get('check_hash', True) else None
        path = download_url(self.url, progress=progress, sha256=sha256)
        return loadable_state_dict(student_weights(path))


def _weights_state_dict(
    weights: GFM_Weights | str | os.PathLike[str],
) -> dict[str, Tensor]:
    if isinstance(weights, GFM_Weights):
        return weights.get_state_dict(progress=True)
    return loadable_state_dict(student_weights(weights))


def gfm_swin_b(
    weights: GFM_Weights | str | os.PathLike[str] | None = None,
    *args: Any,
    **kwargs: Any,
) -> nn.Module:
    """GFM Swin-B (timm ``gfm_swin_base``), optionally with GFM weights.

    Args:
        weights: a :class:`GFM_Weights` member, the path to the authors' ``gfm.pth``, or
            the path to a file written by ``torchgeo-gfm convert``/``export``.
        *args: passed to :func:`timm.create_model` after the model name.
        **kwargs: timm arguments (``num_classes``, ``in_chans``, ``rgb_indices``,
            ``features_only``, ``img_size``, ``window_size``...).

    Returns:
        The model.

    Raises:
        FileNotFoundError: if the weights file does not exist.
        GFMCheckpointError: if the file is not GFM weights of this architecture, or is
            empty, truncated, malicious or holds non-finite or non-floating weights.

    .. versionadded:: 0.1
    """
    if weights is None:
        return timm.create_model('gfm_swin_base', *args, **kwargs)
    state_dict = _weights_state_dict(weights)  # first: a wrong file fails fast
    model = timm.create_model('gfm_swin_base', *args, **kwargs)
    source = str(weights) if isinstance(weights, GFM_Weights) else os.fspath(weights)
    load_gfm_weights(model, state_dict, source)
    return model
