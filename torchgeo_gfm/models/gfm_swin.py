# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""The GFM model family: architecture, the one checkpoint filter, weights and builder.

GFM's student is timm's Swin-B (patch 4, embed 128, depths 2-2-18-2, heads 4-8-16-32) trained
at 192 px with window 6 on GeoPile (arXiv 2302.04476). As timm and TorchGeo write a model:

* :func:`gfm_swin_base`: the architecture, registered with timm (``timm.create_model``,
  smp's ``tu-gfm_swin_base``); its pretrained cfg points at the authors' ``gfm.pth`` on the
  Hugging Face Hub, which timm downloads and hands to
  :meth:`GFMSwinTransformer.load_pretrained` (``custom_load``: the file is a training
  checkpoint with a pickled config, not a state dict timm could read);
* :func:`checkpoint_filter_fn`: the one conversion of GFM weights to the model, timm style;
* :class:`GFM_Weights` and :func:`gfm_swin_b`: TorchGeo's weights enum and builder.

Files are read by :mod:`torchgeo_gfm.models.checkpoint` only (format sniffing, weights-only
unpickling, tensor checks).

Band rule (``in_chans`` != 3): the pretrained patch-embedding filters of R, G and B are copied
to the input channels named by ``rgb_indices``; all other channels start at **zero**, so at
initialisation the model computes exactly the RGB model's features from those three bands and
learns to use the others during fine-tuning. Several RGB triples (``rgb_indices`` of length
``3 * k``, e.g. two co-registered images stacked for change detection) share the filters,
each scaled by ``1 / k``. Defaults when ``rgb_indices`` is not given:

* 3 channels: R, G, B in that order;
* 6 channels: two stacked RGB images (TorchGeo's ``ChangeDetection`` concatenates them);
* otherwise 4 or more channels: Sentinel-2 in TorchGeo's band order, B4, B3, B2 at
  indices 3, 2, 1 (the authors' rule for multispectral fine-tuning);
* 1 or 2 channels: timm's rule (:func:`timm.models.adapt_input_conv`).

.. versionadded:: 0.1
"""

import math
import os
import re
import urllib.parse
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import timm
import torch
import torchvision.transforms.v2 as T
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import ClassifierHead, trunc_normal_
from timm.models import (
    adapt_input_conv,
    build_model_with_cfg,
    generate_default_cfgs,
    register_model,
)
from timm.models.swin_transformer import SwinTransformer
from timm.models.swin_transformer import checkpoint_filter_fn as swin_filter_fn
from torch import Tensor, nn
from torchvision.models._api import Weights, WeightsEnum

from .checkpoint import GFMCheckpointError, read_gfm_weights

#: Hugging Face Hub repository and file of the authors' checkpoint
GFM_HUB_REPO = 'torchgeo/gfm'
GFM_HUB_FILENAME = 'gfm.pth'
GFM_URL = f'https://huggingface.co/{GFM_HUB_REPO}/resolve/main/{GFM_HUB_FILENAME}'

#: Sentinel-2 B4, B3, B2 in TorchGeo's 13-band order (B1, B2, ..., B8, B8A, ..., B12)
SENTINEL2_RGB_INDICES = (3, 2, 1)

#: Swin-B, as in the GFM paper (student and ImageNet-22k teacher); any input size
SWIN_B_ARGS: dict[str, Any] = {
    'patch_size': 4,
    'embed_dim': 128,
    'depths': (2, 2, 18, 2),
    'num_heads': (4, 8, 16, 32),
    'strict_img_size': False,
}

_PATCH_EMBED = 'patch_embed.proj.weight'
_BLOCK = re.compile(r'^layers[._](\d+)\.blocks\.(\d+)\.')
# timm's stage names, and those of its feature extractor (flatten_sequential: layers_0)
_STAGE = re.compile(r'^layers\.(\d+)\.')
# key of the weights in a state dict's ``_metadata`` (see loadable_state_dict)
_WEIGHTS = 'torchgeo_gfm.weights'


# ------------------------------------------------------------------ band rule
def rgb_input_indices(
    in_chans: int, rgb_indices: Sequence[int] | None = None
) -> tuple[int, ...] | None:
    """Where the pretrained R, G, B filters go for a model with *in_chans* inputs.

    Args:
        in_chans: number of input channels of the model.
        rgb_indices: explicit indices of R, G, B (one or more triples), or None for the
            defaults in the module docstring.

    Returns:
        The indices, or None where timm's rule applies (fewer than 3 channels).

    Raises:
        ValueError: if *rgb_indices* is not a list of triples within ``range(in_chans)``.

    .. versionadded:: 0.1
    """
    if rgb_indices is None:
        if in_chans in (3, 6):
            return tuple(range(in_chans))
        return SENTINEL2_RGB_INDICES if in_chans > 3 else None
    idx = tuple(int(i) for i in rgb_indices)
    if not idx or len(idx) % 3:
        raise ValueError(
            f'rgb_indices={idx}: give the input channels of R, G, B (3 indices, or one '
            'triple per stacked RGB image)'
        )
    if not all(0 <= i < in_chans for i in idx) or len(set(idx)) != len(idx):
        raise ValueError(
            f'rgb_indices={idx} must be distinct channel indices in 0..{in_chans - 1} '
            f'for in_chans={in_chans}'
        )
    return idx


def adapt_patch_embed(
    weight: Tensor, in_chans: int, rgb_indices: Sequence[int] | None = None
) -> Tensor:
    """Fit pretrained RGB patch-embedding filters to *in_chans* inputs (band rule).

    Args:
        weight: ``[embed_dim, 3, p, p]`` pretrained filters.
        in_chans: number of input channels of the model.
        rgb_indices: see :func:`rgb_input_indices`.

    Returns:
        ``[embed_dim, in_chans, p, p]`` filters.

    Raises:
        ValueError: if *weight* does not have 3 input channels.

    .. versionadded:: 0.1
    """
    if weight.shape[1] != 3:
        raise ValueError(
            f'pretrained patch embedding has {weight.shape[1]} input channels; GFM weights '
            'are RGB (3 channels)'
        )
    idx = rgb_input_indices(in_chans, rgb_indices)
    if idx is None:
        return adapt_input_conv(in_chans, weight)
    if idx == (0, 1, 2) and in_chans == 3:
        return weight
    out = weight.new_zeros(weight.shape[0], in_chans, *weight.shape[2:])
    groups = len(idx) // 3
    for g in range(groups):
        out[:, list(idx[3 * g : 3 * g + 3])] += weight / groups
    return out


def _in_chans(model: nn.Module) -> int:
    proj = model.get_submodule('patch_embed.proj')
    assert isinstance(proj, nn.Conv2d)
    return proj.in_channels


# ------------------------------------------------------------ the one filter
def _student(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """The Swin in *state_dict*: the authors' student (``encoder.*``) or the dict itself."""
    state_dict = state_dict.get('model', state_dict)  # the authors' checkpoint
    if not any(k.startswith('encoder.') for k in state_dict):
        return dict(state_dict)
    # their SimMIM model: the student less its mask token (teacher, decoder... dropped)
    return {
        k.removeprefix('encoder.'): v
        for k, v in state_dict.items()
        if k.startswith('encoder.') and k != 'encoder.mask_token'
    }


def checkpoint_filter_fn(
    state_dict: Mapping[str, Any], model: nn.Module
) -> dict[str, Tensor]:
    """Convert GFM weights to *model*'s names and shapes (timm's ``pretrained_filter_fn``).

    Recognises the layout by its keys: the authors' checkpoint (``model`` holding
    ``encoder.*``; only the student is kept), Microsoft Swin names (``layers.0.downsample``),
    or timm names (files of ``torchgeo-gfm convert``/``export``, :class:`GFM_Weights`).
    timm's Swin filter renames Microsoft's layout (patch merging at the end of a stage, timm's
    at the start of the next) and resizes relative-position tables to *model*'s windows; RGB
    patch-embedding filters are then fitted to *model*'s bands (band rule, module docstring).

    Args:
        state_dict: GFM weights in any of these layouts.
        model: a :func:`gfm_swin_base` (or its feature extractor); only shapes and
            ``rgb_indices`` are read.

    Returns:
        The state dict in *model*'s key names.

    .. versionadded:: 0.1
    """
    out = swin_filter_fn(_student(state_dict), model)
    if _PATCH_EMBED in out and out[_PATCH_EMBED].shape[1] == 3:
        rgb_indices = getattr(model, 'rgb_indices', None)
        out[_PATCH_EMBED] = adapt_patch_embed(
            out[_PATCH_EMBED], _in_chans(model), rgb_indices
        )
    return out


def describe_swin(state_dict: Mapping[str, Tensor]) -> dict[str, Any]:
    """Architecture of a Swin state dict (timm, feature-extractor or Microsoft names).

    Args:
        state_dict: the weights.

    Returns:
        ``embed_dim``, ``depths``, ``num_heads``, ``in_chans`` and ``window_size`` (of the
        first block) where present.

    .. versionadded:: 0.1
    """
    blocks: dict[int, set[int]] = {}
    heads: dict[int, int] = {}
    info: dict[str, Any] = {}
    for key, value in state_dict.items():
        if key.endswith(_PATCH_EMBED):
            info['embed_dim'], info['in_chans'] = value.shape[0], value.shape[1]
        m = _BLOCK.match(key)
        if not m:
            continue
        stage, block = int(m[1]), int(m[2])
        blocks.setdefault(stage, set()).add(block)
        if key.endswith('relative_position_bias_table') and block == 0:
            heads[stage] = value.shape[1]
            if stage == 0:  # (2w - 1)^2 rows
                info['window_size'] = (math.isqrt(value.shape[0]) + 1) // 2
    info['depths'] = tuple(len(blocks[s]) for s in sorted(blocks))
    info['num_heads'] = tuple(heads[s] for s in sorted(heads))
    return info


def _arch(info: Mapping[str, Any]) -> str:
    return ', '.join(f'{k}={info.get(k)}' for k in ('embed_dim', 'depths', 'num_heads'))


def _reference(info: Mapping[str, Any]) -> 'GFMSwinTransformer':
    """A weightless ``gfm_swin_base`` (meta device) of the architecture *info* describes."""
    window = info.get('window_size', 6)
    args = {**SWIN_B_ARGS, 'embed_dim': info['embed_dim'], 'depths': info['depths']}
    args.update(num_heads=info['num_heads'], in_chans=info['in_chans'])
    # every stage at least one window wide: no window is clipped, no table resized
    img_size = window * 4 * 2 ** (len(info['depths']) - 1)
    args.update(window_size=window, img_size=img_size, weight_init='skip')
    with torch.device('meta'):
        return GFMSwinTransformer(**args)


def _timm_names(swin: dict[str, Tensor]) -> dict[str, Tensor]:
    if 'layers.0.downsample.reduction.weight' not in swin:  # already timm's layout
        return swin
    return swin_filter_fn(swin, _reference(describe_swin(swin)))


def student_state_dict(checkpoint: Mapping[str, Any]) -> dict[str, Tensor]:
    """The GFM student in timm ``gfm_swin_base`` key names, without a model at hand.

    Args:
        checkpoint: the authors' checkpoint (or its ``model``), or timm-named weights.

    Returns:
        The student's state dict.

    .. versionadded:: 0.1
    """
    return _timm_names(_student(checkpoint))


def teacher_state_dict(checkpoint: Mapping[str, Any]) -> dict[str, Tensor]:
    """The authors' frozen teacher (``teacher.*``, Swin-B, window 7) in timm key names.

    Args:
        checkpoint: the authors' checkpoint (or its ``model``).

    Returns:
        The state dict for timm's ``swin_base_patch4_window7_224`` (``num_classes=0``:
        the teacher has no head); empty if the checkpoint has no teacher.

    .. versionadded:: 0.1
    """
    model = checkpoint.get('model', checkpoint)
    teacher = {
        k.removeprefix('teacher.'): v
        for k, v in model.items()
        if k.startswith('teacher.')
    }
    return _timm_names(teacher) if teacher else {}


def upstream_mask_token(checkpoint: Mapping[str, Any]) -> Tensor:
    """The student's learned SimMIM mask token, shape ``[1, 1, embed_dim]``.

    Args:
        checkpoint: the authors' checkpoint (or its ``model``).

    Returns:
        The mask token.

    .. versionadded:: 0.1
    """
    return checkpoint.get('model', checkpoint)['encoder.mask_token']


def check_complete_student(state_dict: Mapping[str, Tensor], source: str) -> None:
    """Refuse weights that are not a whole ``gfm_swin_base`` of the architecture they show.

    Every weight of the Swin the keys describe (:func:`describe_swin`) must be present with
    its shape; a classifier head may be absent. Relative-position tables may be of any
    window (they are resized at load).

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
    own = _reference(info).state_dict()
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


# --------------------------------------------------------------- architecture
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
            # timm downloads the file and calls GFMSwinTransformer.load_pretrained
            custom_load='hf',
        )
    }
)


# Workaround for TorchGeo 0.10.1; drop `out_features` once TorchGeo ships
# upstream/torchgeo/classification-timm-head.patch (load_state_dict asks timm for the classifier).
class GFMClassifierHead(ClassifierHead):
    """timm's ``ClassifierHead`` that also reports ``out_features``.

    TorchGeo 0.10's ``tasks.utils.load_state_dict`` reads ``out_features`` from the model's
    last child, which timm's head lacks (see ``docs/upstream-bug-classification-timm-swin.md``).

    .. versionadded:: 0.1
    """

    @property
    def out_features(self) -> int:
        """The number of classes, or of pooled features without a classifier."""
        fc = self.fc
        return fc.out_features if isinstance(fc, nn.Linear) else self.num_features


class GFMSwinTransformer(SwinTransformer):
    """timm's Swin with GFM's band rule (``rgb_indices``) and a TorchGeo-friendly head.

    .. versionadded:: 0.1
    """

    def __init__(
        self, *, rgb_indices: Sequence[int] | None = None, **kwargs: Any
    ) -> None:
        """Initialize a new GFMSwinTransformer.

        Args:
            rgb_indices: input channels that receive the pretrained R, G, B filters when
                ``in_chans != 3`` (band rule, module docstring).
            **kwargs: passed to :class:`timm.models.swin_transformer.SwinTransformer`.
        """
        super().__init__(**kwargs)
        self.rgb_indices = rgb_input_indices(_in_chans(self), rgb_indices)
        head = self.head
        self.head = GFMClassifierHead(
            head.in_features,
            self.num_classes,
            pool_type=head.global_pool.pool_type,
            drop_rate=head.drop.p,
            input_fmt=head.input_fmt,
        )
        self.head.load_state_dict(head.state_dict())  # keep timm's initialisation
        fit_weights_on_load(self)

    def load_pretrained(self, checkpoint_path: str, prefix: str = '') -> None:
        """Load GFM weights from the authors' file or an exported one (timm's hook).

        Args:
            checkpoint_path: local file (timm has downloaded it if needed).
            prefix: unused (timm API).

        Raises:
            FileNotFoundError: if the file does not exist.
            GFMCheckpointError: if the file is not GFM weights or does not fit this model.
        """
        source = os.fspath(checkpoint_path)
        student = _student(read_gfm_weights(source))
        _check_architecture(self, student, source)
        try:
            missing, unexpected = self.load_state_dict(
                checkpoint_filter_fn(student, self), strict=False
            )
        except RuntimeError as e:  # a size mismatch the filter could not fit
            lines = [x.strip() for x in str(e).splitlines() if 'size mismatch' in x]
            raise GFMCheckpointError(
                f'{source}: does not fit the model ({_arch(describe_swin(student))}): '
                f'{"; ".join(lines[:3]) or e}. Build the model with the architecture of '
                'the weights.'
            ) from None
        missing = [k for k in missing if not k.startswith('head.')]  # a new classifier
        for what, keys in (
            ('no weights for', missing),
            ('unknown weights', unexpected),
        ):
            if keys:
                raise GFMCheckpointError(
                    f'{source}: {what} {keys[:5]}; the model is '
                    f'{_arch(describe_swin(self.state_dict()))}. Is this a GFM Swin '
                    'checkpoint of the same architecture?'
                )


def _check_architecture(
    model: nn.Module, student: Mapping[str, Tensor], source: str
) -> None:
    """Raise if *student* is another Swin than *model*, or has bands it cannot fit."""
    want, have = describe_swin(model.state_dict()), describe_swin(student)
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
    if have.get('in_chans') not in (3, want['in_chans']):
        raise GFMCheckpointError(
            f'{source}: its patch embedding takes {have.get("in_chans")} bands, the model '
            f'{want["in_chans"]}. Only RGB (3-band) weights are fitted to other band counts '
            f'(see rgb_indices); build the model with in_chans={have.get("in_chans")}.'
        )


# ------------------------------------------------------ loading state dicts
def _fit_pre_hook(
    module: nn.Module,
    state_dict: dict[str, Tensor],
    prefix: str,
    local_metadata: Mapping[str, Any],
    *args: Any,
) -> None:
    """Fit what does not fit (bands, windows); take weights passed in the metadata."""
    own = module.state_dict()
    weights = local_metadata.get(_WEIGHTS)
    if weights is not None:  # see loadable_state_dict
        for key, value in weights.items():
            name = key if key in own else _STAGE.sub(r'layers_\1.', key)
            if name in own:  # a feature extractor has no final norm
                state_dict.setdefault(prefix + name, value)
        if prefix:  # nested: the top-level timm names were addressed to this model
            module.__dict__['_gfm_taken'] = set(weights)
    misfit = {
        k: v
        for k, v in ((k.removeprefix(prefix), v) for k, v in state_dict.items())
        if k in own and v.shape != own[k].shape
    }
    if misfit:  # only these: resuming a model's own weights stays exact
        fitted = checkpoint_filter_fn(misfit, module)
        state_dict.update({prefix + k: v for k, v in fitted.items()})


def _taken_post_hook(module: nn.Module, incompatible: Any) -> None:
    """The weights this model took from the metadata are not unexpected keys."""
    taken = module.__dict__.pop('_gfm_taken', set())
    incompatible.unexpected_keys[:] = [
        k for k in incompatible.unexpected_keys if k not in taken
    ]


def fit_weights_on_load(module: nn.Module) -> None:
    """Make ``module.load_state_dict`` fit GFM weights and find them under smp's encoder.

    Registered by :func:`gfm_swin_base` on the model and on its feature extractor.

    Args:
        module: the model, or its feature extractor (with ``rgb_indices`` set).

    .. versionadded:: 0.1
    """
    module.register_load_state_dict_pre_hook(_fit_pre_hook)
    module.register_load_state_dict_post_hook(_taken_post_hook)


def loadable_state_dict(state_dict: Mapping[str, Tensor]) -> 'OrderedDict[str, Tensor]':
    """Timm-named GFM weights that also load into smp's ``tu-gfm_swin_base`` encoder.

    TorchGeo's segmentation and change detection load a weights enum's state dict into
    smp's encoder, strictly; the encoder nests the model as ``model``, under the feature
    extractor's names (``model.layers_0...``). ``nn.Module.load_state_dict`` hands a nested
    module only the keys under its prefix, plus ``state_dict._metadata[<its prefix>]``, so the
    weights travel there too: under ``'model'`` (smp's encoder) and ``''`` (the model itself,
    where TorchGeo's ``Classification`` deletes the patch embedding of another band count).
    The model's load hooks (:func:`fit_weights_on_load`) take them from there, fit bands and
    windows, and clear the timm names from the encoder's unexpected keys.

    Args:
        state_dict: weights in timm ``gfm_swin_base`` key names.

    Returns:
        An ``OrderedDict`` of the same tensors.

    .. versionadded:: 0.1
    """
    out: OrderedDict[str, Tensor] = OrderedDict(state_dict)
    weights = {_WEIGHTS: dict(state_dict)}
    out._metadata = {'': weights, 'model': weights}  # type: ignore[attr-defined]
    return out


@register_model
def gfm_swin_base(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """Swin-B student of GFM (patch 4, window 6, 192 px), any input size.

    Args:
        pretrained: load GFM weights (the Hub's ``gfm.pth``, or the file, url or state
            dict of ``pretrained_cfg_overlay``).
        **kwargs: passed to :class:`GFMSwinTransformer` (timm Swin arguments and
            ``rgb_indices``), plus timm's ``features_only``/``out_indices``.

    Returns:
        The model (a timm feature extractor with ``features_only=True``).

    .. versionadded:: 0.1
    """
    args: dict[str, Any] = {**SWIN_B_ARGS, 'img_size': 192, 'window_size': 6, **kwargs}
    out_indices = args.pop('out_indices', (0, 1, 2, 3))
    if pretrained:  # every weight but a new classifier is loaded: skip timm's slow init
        args.setdefault('weight_init', 'skip')
    overlay = args.get('pretrained_cfg_overlay') or {}
    if any(overlay.get(k) for k in ('file', 'url', 'hf_hub_id')):
        # timm resets custom_load for another source (it could be a plain state dict);
        # GFM files never are: the authors' pickles a config, ours are checked on reading
        args['pretrained_cfg_overlay'] = {'custom_load': 'hf', **overlay}
    model = build_model_with_cfg(
        GFMSwinTransformer,
        'gfm_swin_base',
        pretrained,
        pretrained_filter_fn=checkpoint_filter_fn,
        feature_cfg={'flatten_sequential': True, 'out_indices': out_indices},
        **args,
    )
    if not isinstance(model, GFMSwinTransformer):  # a feature extractor: a new module
        model.rgb_indices = rgb_input_indices(_in_chans(model), args.get('rgb_indices'))
        fit_weights_on_load(model)
    elif args.get('weight_init') == 'skip' and isinstance(model.head.fc, nn.Linear):
        trunc_normal_(model.head.fc.weight, std=0.02)  # timm's init of a new classifier
        nn.init.zeros_(model.head.fc.bias)
    return model


# ------------------------------------------------------------ TorchGeo weights
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
            # SHA-256 of the published gfm.pth, checked after download when set; not pinned
            # yet (the file could not be fetched from the environment that wrote this)
            'sha256': None,
        },
    )

    def download(self, progress: bool = True, check_hash: bool = True) -> Path:
        """Download the file once into torch's hub cache (``checkpoints/``).

        Args:
            progress: show a progress bar.
            check_hash: verify ``meta['sha256']`` where it is set.

        Returns:
            The local file.

        Raises:
            RuntimeError: if the SHA-256 does not match (nothing is kept).
        """
        name = Path(urllib.parse.urlparse(self.url).path).name
        path = Path(torch.hub.get_dir()) / 'checkpoints' / name
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            sha256 = self.meta['sha256'] if check_hash else None
            # torch checks the hash before it moves the download into place
            torch.hub.download_url_to_file(
                self.url, os.fspath(path), hash_prefix=sha256, progress=progress
            )
        return path

    def get_state_dict(self, *args: Any, **kwargs: Any) -> 'OrderedDict[str, Tensor]':
        """Download the authors' checkpoint and return the student's weights.

        Args:
            *args: ``progress`` (bool) may be given positionally, as in torchvision.
            **kwargs: ``progress`` and ``check_hash``; torchvision's other arguments
                (``weights_only``...) are accepted and ignored: the file is always read
                with ``weights_only=True``.

        Returns:
            The state dict in timm ``gfm_swin_base`` key names; it also loads into smp's
            ``tu-gfm_swin_base`` encoder (see :func:`loadable_state_dict`).
        """
        progress = bool(kwargs.get('progress', args[0] if args else True))
        path = self.download(progress, bool(kwargs.get('check_hash', True)))
        return loadable_state_dict(student_state_dict(read_gfm_weights(path)))


def gfm_swin_b(
    weights: GFM_Weights | str | os.PathLike[str] | None = None,
    *args: Any,
    **kwargs: Any,
) -> nn.Module:
    """GFM Swin-B (timm ``gfm_swin_base``), optionally with GFM weights.

    Two names, one model: ``gfm_swin_b`` follows TorchGeo's builders (``swin_v2_b``,
    ``vit_small_patch16_224``) and takes a weights enum or file; ``gfm_swin_base`` is the
    timm registry name (timm's ``swin_base_*``), which smp's ``tu-`` encoders and TorchGeo's
    ``Classification(model=...)`` look up.

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
    if isinstance(weights, GFM_Weights):
        weights = weights.download()
    kwargs.update(pretrained=True, pretrained_cfg_overlay={'file': os.fspath(weights)})
    return timm.create_model('gfm_swin_base', *args, **kwargs)
