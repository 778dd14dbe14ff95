# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""The GFM student as a timm architecture, ``gfm_swin_base``.

``timm.create_model('gfm_swin_base', pretrained=True)`` fetches the authors' ``gfm.pth``
from the Hugging Face Hub (repo ``torchgeo/gfm``) through timm's ``custom_load`` hook, reads
it with ``weights_only=True``, converts the student to timm names and caches the result.
``pretrained_cfg_overlay=dict(file=PATH)`` takes a local copy of the authors' file or a file
exported by ``torchgeo-gfm convert``.

Two additions to timm's Swin make the model load GFM weights wherever TorchGeo puts it:

* the classifier head reports ``out_features`` (TorchGeo's ``Classification`` reads it from
  the model's last child when loading weights);
* load-state-dict hooks fit RGB weights to other band counts and window sizes, and let a
  wrapper (smp's ``tu-gfm_swin_base`` encoder, which nests the model as ``model.`` with
  flattened stage names) load the timm-named state dict that
  :meth:`~torchgeo_gfm.models.GFM_Weights.get_state_dict` returns, see
  :func:`loadable_state_dict`.

.. versionadded:: 0.1
"""

import re
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import ClassifierHead, trunc_normal_
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models.swin_transformer import SwinTransformer
from torch import Tensor, nn

from .adapt import (
    adapt_patch_embed,
    check_missing,
    describe_swin,
    fit_state_dict,
    rgb_input_indices,
)
from .checkpoint import GFMCheckpointError, ms_swin_to_timm, student_state_dict
from .download import GFM_HUB_FILENAME, GFM_HUB_REPO, GFM_URL, student_weights

_PAYLOAD = 'torchgeo_gfm.timm_state_dict'
_SOURCE_KEYS = ('file', 'url', 'hf_hub_id', 'hf_hub_filename')
_FLAT_STAGE = re.compile(r'^layers_(\d+)\.')


#: Swin-B, as in the GFM paper (student and ImageNet-22k teacher); any input size
SWIN_B_ARGS: dict[str, Any] = {
    'patch_size': 4,
    'embed_dim': 128,
    'depths': (2, 2, 18, 2),
    'num_heads': (4, 8, 16, 32),
    'strict_img_size': False,
}


def _cfg(**kwargs: Any) -> dict[str, Any]:
    return {
        'num_classes': 0,
        'input_size': (3, 192, 192),
        'pool_size': (6, 6),
        'crop_pct': 1.0,
        'interpolation': 'bicubic',
        'fixed_input_size': False,
        'mean': IMAGENET_DEFAULT_MEAN,
        'std': IMAGENET_DEFAULT_STD,
        'first_conv': 'patch_embed.proj',
        'classifier': 'head.fc',
        'license': 'apache-2.0',
        'paper_ids': 'arXiv:2302.04476',
        'paper_name': 'Towards Geospatial Foundation Models via Continual Pretraining',
        'origin_url': 'https://github.com/mmendiet/GFM',
        **kwargs,
    }


default_cfgs = generate_default_cfgs(
    {
        'gfm_swin_base.geopile': _cfg(
            hf_hub_id=GFM_HUB_REPO,
            hf_hub_filename=GFM_HUB_FILENAME,
            url=GFM_URL,
            # the file is a training checkpoint with a pickled yacs config, not a state dict:
            # timm hands the downloaded file to GFMSwinTransformer.load_pretrained
            custom_load='hf',
        )
    }
)


def _in_chans(model: nn.Module) -> int:
    proj = model.get_submodule('patch_embed.proj')
    assert isinstance(proj, nn.Conv2d)
    return proj.in_channels


class TorchGeoClassifierHead(ClassifierHead):
    """timm's ``ClassifierHead`` that also reports ``out_features``.

    TorchGeo 0.10's ``tasks.utils.load_state_dict`` reads ``out_features`` from the model's
    last child, which timm's head lacks (see ``docs/upstream-bug-classification-timm-swin.md``).

    .. versionadded:: 0.1
    """

    @property
    def out_features(self) -> int:
        """Number of outputs: classes, or pooled features without a classifier."""
        fc = self.fc
        return fc.out_features if isinstance(fc, nn.Linear) else self.num_features


class GFMSwinTransformer(SwinTransformer):
    """timm's Swin with GFM weight loading (``rgb_indices``, TorchGeo-friendly head).

    .. versionadded:: 0.1
    """

    def __init__(
        self, *, rgb_indices: Sequence[int] | None = None, **kwargs: Any
    ) -> None:
        """Initialize a new GFMSwinTransformer.

        Args:
            rgb_indices: input channels that receive the pretrained R, G, B filters when
                ``in_chans != 3`` (see :mod:`torchgeo_gfm.models.adapt`).
            **kwargs: passed to :class:`timm.models.swin_transformer.SwinTransformer`.
        """
        super().__init__(**kwargs)
        self.rgb_indices = rgb_input_indices(_in_chans(self), rgb_indices)
        # same object and weights, one more read-only property
        self.head.__class__ = TorchGeoClassifierHead
        install_load_hooks(self, self.rgb_indices)

    def load_pretrained(self, checkpoint_path: str, prefix: str = '') -> None:
        """Load GFM weights from the authors' file or an exported one (timm's hook).

        Args:
            checkpoint_path: local file (timm has downloaded it if needed).
            prefix: unused (timm API).

        Raises:
            GFMCheckpointError: if the file is not GFM or does not fit this architecture.
        """
        load_gfm_weights(self, student_weights(checkpoint_path), str(checkpoint_path))


def _to_timm_names(state_dict: Mapping[str, Any]) -> dict[str, Tensor]:
    """Accept the authors' checkpoint dict, a Microsoft-named Swin or timm names."""
    if 'model' in state_dict and isinstance(state_dict['model'], Mapping):
        return student_state_dict(state_dict)
    if any(k.startswith('encoder.') for k in state_dict):
        return student_state_dict({'model': state_dict})
    if 'layers.0.downsample.reduction.weight' in state_dict:
        return ms_swin_to_timm(state_dict)
    return dict(state_dict)


def _pretrained_filter(
    state_dict: Mapping[str, Any], model: nn.Module
) -> dict[str, Tensor]:
    """Filter of timm's generic loader, for ``pretrained_cfg_overlay=dict(state_dict=...)``."""
    rgb_indices = getattr(model, 'rgb_indices', None)
    weights = _to_timm_names(state_dict)
    key = 'patch_embed.proj.weight'
    if key in weights and weights[key].shape[1] == 3:  # published RGB weights
        weights[key] = adapt_patch_embed(weights[key], _in_chans(model), rgb_indices)
    return fit_state_dict(
        weights, model, rgb_indices=rgb_indices, source='pretrained state_dict'
    )


class _EveryPrefix(dict[str, Any]):
    """``_metadata`` of a loadable state dict: each module's lookup finds the weights."""

    def __init__(self, payload: Mapping[str, Tensor]) -> None:
        super().__init__()
        self.payload = payload

    def get(self, key: Any, default: Any = None) -> dict[str, Any]:
        return {_PAYLOAD: self.payload}

    def __reduce__(self) -> tuple[type, tuple[()]]:
        # saved or copied, the state dict keeps plain metadata (weights_only-loadable)
        return (OrderedDict, ())


def loadable_state_dict(state_dict: Mapping[str, Tensor]) -> 'OrderedDict[str, Tensor]':
    """A timm-named GFM state dict that also loads into a wrapped ``gfm_swin_base``.

    ``torch.nn.Module.load_state_dict`` passes a state dict's ``_metadata`` to every
    submodule; here it carries the weights, so a ``gfm_swin_base`` nested in a wrapper (e.g.
    smp's ``tu-`` encoder, keys ``model.layers_0...``) takes them under its own names and
    clears the unprefixed names from the wrapper's unexpected keys. The keys themselves are
    plain timm names.

    Args:
        state_dict: weights in timm ``gfm_swin_base`` key names.

    Returns:
        An ``OrderedDict`` of the same tensors.

    .. versionadded:: 0.1
    """
    out: OrderedDict[str, Tensor] = OrderedDict(state_dict)
    out._metadata = _EveryPrefix(out)  # type: ignore[attr-defined]
    return out


@dataclass
class _LoadInfo:
    """What the load hooks of one model need (kept in the module's ``__dict__``)."""

    rgb_indices: tuple[int, ...] | None
    timm_names: dict[str, str]  # own key -> timm gfm_swin_base key
    consumed: set[str] = field(default_factory=set)


def _pre_hook(
    module: nn.Module,
    state_dict: dict[str, Tensor],
    prefix: str,
    local_metadata: Mapping[str, Any],
    *args: Any,
) -> None:
    info: _LoadInfo = module.__dict__['_gfm_load']
    payload = (
        local_metadata.get(_PAYLOAD) if isinstance(local_metadata, Mapping) else None
    )
    consumed: set[str] = set()
    if payload is not None:
        for own, timm_name in info.timm_names.items():
            if prefix + own not in state_dict and timm_name in payload:
                state_dict[prefix + own] = payload[timm_name]
                consumed.add(timm_name)
        if (
            prefix or consumed
        ):  # the weights were addressed to this model, under other names
            consumed = set(payload)
    info.consumed = consumed
    state_dict.update(
        fit_state_dict(
            {k: v for k, v in state_dict.items() if k.startswith(prefix)},
            module,
            rgb_indices=info.rgb_indices,
            prefix=prefix,
            strict_shapes=False,
        )
    )


def _post_hook(module: nn.Module, incompatible: Any) -> None:
    info: _LoadInfo = module.__dict__['_gfm_load']
    if info.consumed:
        incompatible.unexpected_keys[:] = [
            k for k in incompatible.unexpected_keys if k not in info.consumed
        ]
    info.consumed = set()


def install_load_hooks(module: nn.Module, rgb_indices: tuple[int, ...] | None) -> None:
    """Make *module* (``gfm_swin_base`` or its feature extractor) fit GFM weights on load.

    Args:
        module: the model timm built.
        rgb_indices: resolved RGB channel indices (see :func:`rgb_input_indices`).

    .. versionadded:: 0.1
    """
    names = {
        k: _FLAT_STAGE.sub(r'layers.\1.', k) for k in module.state_dict(keep_vars=True)
    }
    module.__dict__['_gfm_load'] = _LoadInfo(rgb_indices, names)
    module.register_load_state_dict_pre_hook(_pre_hook)
    module.register_load_state_dict_post_hook(_post_hook)


def _arch(info: Mapping[str, Any]) -> str:
    return ', '.join(f'{k}={info.get(k)}' for k in ('embed_dim', 'depths', 'num_heads'))


def load_gfm_weights(
    model: nn.Module, state_dict: Mapping[str, Tensor], source: str
) -> None:
    """Load timm-named GFM weights into ``gfm_swin_base`` or its feature extractor.

    Bands and window sizes are fitted (see :mod:`torchgeo_gfm.models.adapt`); a classifier
    head, if any, stays freshly initialised.

    Args:
        model: a model built by :func:`gfm_swin_base`.
        state_dict: weights in timm ``gfm_swin_base`` key names.
        source: where they came from, for error messages.

    Raises:
        GFMCheckpointError: if the weights are of another architecture.

    .. versionadded:: 0.1
    """
    want, have = describe_swin(model.state_dict()), describe_swin(state_dict)
    n = len(want['depths'])
    if (
        want.get('embed_dim') != have.get('embed_dim')
        or want['depths'] != have['depths'][:n]
        or want['num_heads'] != have['num_heads'][:n]
    ):
        raise GFMCheckpointError(
            f'{source}: holds a Swin with {_arch(have)}, the model has {_arch(want)}. '
            'Build the model with the architecture of the weights.'
        )
    bands, in_chans = have.get('in_chans'), want.get('in_chans')
    if bands not in (3, in_chans):
        raise GFMCheckpointError(
            f'{source}: its patch embedding takes {bands} bands, the model {in_chans}. '
            'Only RGB (3-band) weights are fitted to other band counts (see rgb_indices); '
            f'build the model with in_chans={bands} for these weights.'
        )
    if bands == 3:
        # published RGB weights: the band rule applies even to a 3-band reordering (the load
        # hooks only act on a band-count mismatch, so resuming own checkpoints is exact)
        rgb_indices = model.__dict__['_gfm_load'].rgb_indices
        key = 'patch_embed.proj.weight'
        state_dict = {
            **state_dict,
            key: adapt_patch_embed(state_dict[key], _in_chans(model), rgb_indices),
        }
    try:
        missing, unexpected = model.load_state_dict(
            loadable_state_dict(state_dict), strict=False
        )
    except RuntimeError as e:  # size mismatch the fitting could not resolve
        lines = [x.strip() for x in str(e).splitlines() if 'size mismatch' in x]
        raise GFMCheckpointError(
            f'{source}: does not fit the model ({_arch(want)}): '
            f'{"; ".join(lines[:3]) or e}. Build the model with the architecture of '
            'the weights.'
        ) from None
    check_missing(missing, source, want)
    if unexpected:
        raise GFMCheckpointError(
            f'{source}: weights {unexpected[:5]} have no place in the model ({_arch(want)}).'
        )


def check_complete_student(state_dict: Mapping[str, Tensor], source: str) -> None:
    """Refuse weights that are not a whole ``gfm_swin_base`` of the architecture they show.

    Every weight of the Swin the keys describe (embed_dim, depths, num_heads, in_chans;
    :func:`~torchgeo_gfm.models.adapt.describe_swin`) must be present with its shape; a
    classifier head may be absent. Relative-position tables may be of any window (they
    are resized at load). The reference model is built on the meta device (no memory).

    Args:
        state_dict: student weights in timm names.
        source: where they came from, for error messages.

    Raises:
        GFMCheckpointError: naming what is missing, extra or of the wrong shape.

    .. versionadded:: 0.1
    """
    info = describe_swin(state_dict)
    depths, heads = info['depths'], info['num_heads']
    if 'embed_dim' not in info or not depths or len(depths) != len(heads):
        raise GFMCheckpointError(
            f'{source}: not a complete Swin (found {len(state_dict)} tensors describing '
            f'{info}); expected a whole GFM Swin student (patch_embed.*, layers.*, norm.*).'
        )
    args = {**SWIN_B_ARGS, 'embed_dim': info['embed_dim'], 'depths': depths}
    args.update(num_heads=heads, in_chans=info['in_chans'], weight_init='skip')
    with torch.device('meta'):
        own = gfm_swin_base(**args).state_dict()
    missing = [k for k in own if k not in state_dict and not k.startswith('head.')]
    extra = [k for k in state_dict if k not in own]
    shapes = [
        f'{k} {tuple(v.shape)} != {tuple(own[k].shape)}'
        for k, v in state_dict.items()
        if k in own
        and v.shape != own[k].shape
        and not k.endswith('relative_position_bias_table')
    ]
    for what, keys in (('lacks', missing), ('has extra', extra), ('misshapes', shapes)):
        if keys:
            more = f' and {len(keys) - 5} more' if len(keys) > 5 else ''
            raise GFMCheckpointError(
                f'{source}: {what} {len(keys)} weights of a gfm_swin_base with '
                f'{_arch(info)}: {keys[:5]}{more}. Expected a complete GFM Swin student; '
                'is the checkpoint incomplete or of another model?'
            )


@register_model
def gfm_swin_base(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """Swin-B student of GFM (patch 4, window 6, 192 px), any input size.

    Args:
        pretrained: load the GFM GeoPile weights.
        **kwargs: passed to :class:`GFMSwinTransformer` (timm Swin arguments and
            ``rgb_indices``), plus timm's ``features_only``/``out_indices``.

    Returns:
        The model (a timm feature extractor with ``features_only=True``).

    .. versionadded:: 0.1
    """
    args: dict[str, Any] = {**SWIN_B_ARGS, 'img_size': 192, 'window_size': 6, **kwargs}
    out_indices = args.pop('out_indices', (0, 1, 2, 3))
    if pretrained:
        # every weight but the classifier is overwritten: skip timm's slow random init
        args.setdefault('weight_init', 'skip')
    overlay = args.get('pretrained_cfg_overlay') or {}
    if any(overlay.get(k) for k in _SOURCE_KEYS) and 'custom_load' not in overlay:
        # timm resets custom_load for a new source; ours (gfm.pth or exported) needs our loader
        args['pretrained_cfg_overlay'] = {**overlay, 'custom_load': 'hf'}
    model = build_model_with_cfg(
        GFMSwinTransformer,
        'gfm_swin_base',
        pretrained,
        pretrained_filter_fn=_pretrained_filter,
        feature_cfg={'flatten_sequential': True, 'out_indices': out_indices},
        **args,
    )
    if isinstance(model, GFMSwinTransformer):
        if args.get('weight_init') == 'skip' and isinstance(model.head.fc, nn.Linear):
            trunc_normal_(
                model.head.fc.weight, std=0.02
            )  # timm's init of a new classifier
            nn.init.zeros_(model.head.fc.bias)
    else:  # a feature extractor is a new root module
        in_chans = _in_chans(model)
        install_load_hooks(model, rgb_input_indices(in_chans, args.get('rgb_indices')))
    return model
