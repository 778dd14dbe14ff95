# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""The GFM Swin-B: architecture, timm registration, TorchGeo weights and builder.

GFM's student is timm's Swin-B (patch 4, embed 128, depths 2-2-18-2, heads 4-8-16-32) trained
at 192 px with window 6 on GeoPile (arXiv 2302.04476). As timm and TorchGeo write a model,
read top to bottom:

* ``default_cfgs``: where the weights are, the authors' ``gfm.pth`` on the Hugging Face Hub;
* :class:`GFMSwinTransformer`: timm's Swin plus the band rule;
  :meth:`~GFMSwinTransformer.load_pretrained` reads a file (timm's ``custom_load``: the
  authors' file is a training checkpoint with a pickled config, not a state dict timm could
  read) and loads it through :func:`checkpoint_filter_fn`, the one conversion of GFM weights
  to a model;
* :func:`gfm_swin_base`: the timm builder (``timm.create_model('gfm_swin_base')``, smp's
  ``tu-gfm_swin_base``); with ``pretrained=True`` timm downloads the file with
  ``huggingface_hub.hf_hub_download`` into the Hub cache and calls ``load_pretrained``;
* :class:`GFM_Weights` and :func:`gfm_swin_b`: TorchGeo's weights enum and builder; the
  enum downloads the same file, the same way, into the same cache.

Files are read by :mod:`torchgeo_gfm.models.checkpoint` only (format sniffing, weights-only
unpickling, hash and tensor checks). The band rule is :mod:`torchgeo_gfm.models.bands`, the
authors' checkpoint layout :mod:`torchgeo_gfm.models.swin_state`, and the TorchGeo 0.10
workaround for smp encoders :mod:`torchgeo_gfm.models.smp_encoder`.

.. versionadded:: 0.1
"""

import os
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import huggingface_hub
import timm
import torchvision.transforms.v2 as T
from huggingface_hub.utils import silent_tqdm
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import ClassifierHead, trunc_normal_
from timm.models import (
    build_model_with_cfg,
    generate_default_cfgs,
    get_pretrained_cfg,
    register_model,
)
from timm.models.swin_transformer import SwinTransformer
from timm.models.swin_transformer import checkpoint_filter_fn as swin_filter_fn
from torch import Tensor, nn
from torchvision.models import Weights, WeightsEnum

from .bands import adapt_patch_embed, input_channels, rgb_input_indices
from .checkpoint import GFMCheckpointError, check_hub_pin, read_gfm_weights
from .smp_encoder import accept_timm_names, loadable_state_dict
from .swin_state import (
    PATCH_EMBED,
    SWIN_B_ARGS,
    arch_text,
    describe_swin,
    student_state_dict,
    unwrap_student,
)

#: Hugging Face Hub repository and file of the authors' checkpoint
GFM_HUB_REPO = 'torchgeo/gfm'
GFM_HUB_FILENAME = 'gfm.pth'
GFM_URL = f'https://huggingface.co/{GFM_HUB_REPO}/resolve/main/{GFM_HUB_FILENAME}'


# --------------------------------------------------------------- architecture
def swin_b_cfg(**kwargs: Any) -> dict[str, Any]:
    """A timm pretrained cfg for a Swin-B of any input size (timm's ``_cfg``).

    Args:
        **kwargs: the weights' own entries (``hf_hub_id``, ``input_size``...).

    Returns:
        The cfg.

    .. versionadded:: 0.2
    """
    return {
        'crop_pct': 1.0,
        'interpolation': 'bicubic',
        'fixed_input_size': False,
        'mean': IMAGENET_DEFAULT_MEAN,
        'std': IMAGENET_DEFAULT_STD,
        'first_conv': 'patch_embed.proj',
        'classifier': 'head.fc',
        **kwargs,
    }


default_cfgs = generate_default_cfgs(
    {
        'gfm_swin_base.geopile': swin_b_cfg(
            hf_hub_id=GFM_HUB_REPO,
            hf_hub_filename=GFM_HUB_FILENAME,
            url=GFM_URL,
            # timm downloads the file and calls GFMSwinTransformer.load_pretrained
            custom_load='hf',
            num_classes=0,
            input_size=(3, 192, 192),
            pool_size=(6, 6),
            license='apache-2.0',
            paper_ids='arXiv:2302.04476',
            paper_name='Towards Geospatial Foundation Models via Continual Pretraining',
            origin_url='https://github.com/mmendiet/GFM',
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
                ``in_chans != 3`` (band rule: :func:`rgb_input_indices`).
            **kwargs: passed to :class:`timm.models.swin_transformer.SwinTransformer`.
        """
        super().__init__(**kwargs)
        self.rgb_indices = rgb_input_indices(input_channels(self), rgb_indices)
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
        student = unwrap_student(read_gfm_weights(source))
        _check_architecture(self, student, source)
        try:
            missing, unexpected = self.load_state_dict(
                checkpoint_filter_fn(student, self), strict=False
            )
        except RuntimeError as e:  # a size mismatch the filter could not fit
            lines = [x.strip() for x in str(e).splitlines() if 'size mismatch' in x]
            raise GFMCheckpointError(
                f'{source}: does not fit the model ({arch_text(describe_swin(student))}): '
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
                    f'{arch_text(describe_swin(self.state_dict()))}. Is this a GFM Swin '
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
            f'{source}: holds a Swin with {arch_text(have)}, the model has '
            f'{arch_text(want)}. Build the model with the architecture of the weights.'
        )
    if have.get('in_chans') not in (3, want['in_chans']):
        raise GFMCheckpointError(
            f'{source}: its patch embedding takes {have.get("in_chans")} bands, the model '
            f'{want["in_chans"]}. Only RGB (3-band) weights are fitted to other band counts '
            f'(see rgb_indices); build the model with in_chans={have.get("in_chans")}.'
        )


# ------------------------------------------------------------ the one filter
def checkpoint_filter_fn(
    state_dict: Mapping[str, Any], model: nn.Module
) -> dict[str, Tensor]:
    """Convert GFM weights to *model*'s names and shapes (timm's ``pretrained_filter_fn``).

    Recognises the layout by its keys: the authors' checkpoint (``model`` holding
    ``encoder.*``; only the student is kept), Microsoft Swin names (``layers.0.downsample``),
    or timm names (files of ``torchgeo-gfm convert``/``export``, :class:`GFM_Weights`).
    timm's Swin filter renames Microsoft's layout (patch merging at the end of a stage, timm's
    at the start of the next) and resizes relative-position tables to *model*'s windows; RGB
    patch-embedding filters are then fitted to *model*'s bands (:func:`adapt_patch_embed`).

    Args:
        state_dict: GFM weights in any of these layouts.
        model: a :func:`gfm_swin_base` (or its feature extractor); only shapes and
            ``rgb_indices`` are read.

    Returns:
        The state dict in *model*'s key names.

    .. versionadded:: 0.1
    """
    out = swin_filter_fn(unwrap_student(state_dict), model)
    if PATCH_EMBED in out and out[PATCH_EMBED].shape[1] == 3:
        rgb_indices = getattr(model, 'rgb_indices', None)
        out[PATCH_EMBED] = adapt_patch_embed(
            out[PATCH_EMBED], input_channels(model), rgb_indices
        )
    return out


def _fit_pre_hook(
    module: nn.Module, state_dict: dict[str, Tensor], prefix: str, *args: Any
) -> None:
    """Fit the weights whose shapes differ (bands, windows) with the filter."""
    own = module.state_dict()
    misfit = {
        k: v
        for k, v in ((k.removeprefix(prefix), v) for k, v in state_dict.items())
        if k in own and v.shape != own[k].shape
    }
    if misfit:  # only these: resuming a model's own weights stays exact
        fitted = checkpoint_filter_fn(misfit, module)
        state_dict.update({prefix + k: v for k, v in fitted.items()})


def fit_weights_on_load(module: nn.Module) -> None:
    """Make ``module.load_state_dict`` fit RGB GFM weights to its bands and windows.

    Registered by :func:`gfm_swin_base` on the model and on its feature extractor: TorchGeo's
    ``ChangeDetection`` loads RGB weights into a 6-band encoder.

    Args:
        module: the model, or its feature extractor (with ``rgb_indices`` set).

    .. versionadded:: 0.1
    """
    module.register_load_state_dict_pre_hook(_fit_pre_hook)


# ----------------------------------------------------------------- builders
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
    args: dict[str, Any] = {'img_size': 192, 'window_size': 6, **kwargs}
    if pretrained:  # every weight but a new classifier is loaded: skip timm's slow init
        args.setdefault('weight_init', 'skip')
    overlay = args.get('pretrained_cfg_overlay') or {}
    if any(overlay.get(k) for k in ('file', 'url', 'hf_hub_id')):
        # timm resets custom_load for another source (it could be a plain state dict);
        # GFM files never are: the authors' pickles a config, ours are checked on reading
        args['pretrained_cfg_overlay'] = {'custom_load': 'hf', **overlay}
    model = build_swin_b(
        GFMSwinTransformer, 'gfm_swin_base', pretrained, checkpoint_filter_fn, **args
    )
    if not isinstance(model, GFMSwinTransformer):  # a feature extractor: a new module
        rgb_indices = rgb_input_indices(input_channels(model), args.get('rgb_indices'))
        model.rgb_indices = rgb_indices  # type: ignore[assignment]
        accept_timm_names(model)  # TorchGeo 0.10 workaround, before fitting
        fit_weights_on_load(model)
    elif args.get('weight_init') == 'skip' and isinstance(model.head.fc, nn.Linear):
        trunc_normal_(model.head.fc.weight, std=0.02)  # timm's init of a new classifier
        nn.init.zeros_(model.head.fc.bias)
    return model


def build_swin_b(
    model_cls: type[SwinTransformer],
    variant: str,
    pretrained: bool,
    filter_fn: Any,
    **kwargs: Any,
) -> nn.Module:
    """Build a Swin-B of any input size with timm's ``build_model_with_cfg``.

    Args:
        model_cls: timm's Swin class or a subclass.
        variant: the registered model name.
        pretrained: load the weights of its pretrained cfg.
        filter_fn: timm's ``pretrained_filter_fn``.
        **kwargs: Swin arguments over :data:`SWIN_B_ARGS`, plus timm's ``features_only``
            and ``out_indices``.

    Returns:
        The model (a feature extractor of stages ``layers_0``... with ``features_only``).

    .. versionadded:: 0.2
    """
    args: dict[str, Any] = {**SWIN_B_ARGS, **kwargs}
    out_indices = args.pop('out_indices', (0, 1, 2, 3))
    return build_model_with_cfg(
        model_cls,
        variant,
        pretrained,
        pretrained_filter_fn=filter_fn,
        feature_cfg={'flatten_sequential': True, 'out_indices': out_indices},
        **args,
    )


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
            'timm_name': 'gfm_swin_base.geopile',
            # SHA-256 of the published gfm.pth, checked after download when set; not pinned
            # yet (the file could not be fetched from the environment that wrote this)
            'sha256': None,
        },
    )

    def download(self, progress: bool = True, check_hash: bool = True) -> Path:
        """Download the file as timm does: ``hf_hub_download`` into the Hub cache.

        The pretrained cfg of ``meta['timm_name']`` names the Hub repository and file, so
        ``timm.create_model('gfm_swin_base', pretrained=True)`` finds the same file in the
        same cache and never downloads it again.

        Args:
            progress: show a progress bar.
            check_hash: verify ``meta['sha256']`` where it is set.

        Returns:
            The local file (a link into the Hub cache).

        Raises:
            GFMCheckpointError: if the file is not the one ``meta['sha256']`` pins.
        """
        cfg = get_pretrained_cfg(self.meta['timm_name'])  # registered above
        assert cfg is not None
        path = huggingface_hub.hf_hub_download(
            str(cfg.hf_hub_id),
            str(cfg.hf_hub_filename),
            tqdm_class=None if progress else silent_tqdm,
        )
        if check_hash and self.meta['sha256']:
            check_hub_pin(path, self.meta['sha256'])
        return Path(path)

    def get_state_dict(self, *args: Any, **kwargs: Any) -> 'OrderedDict[str, Tensor]':
        """Download the authors' checkpoint and return the student's weights.

        Args:
            *args: ``progress`` (bool) may be given positionally, as in torchvision.
            **kwargs: ``progress`` and ``check_hash``; torchvision's other arguments
                (``weights_only``...) are accepted and ignored: the file is always read
                with ``weights_only=True``.

        Returns:
            The state dict in timm ``gfm_swin_base`` key names; with TorchGeo 0.10 it also
            loads into smp's ``tu-gfm_swin_base`` encoder (see :func:`loadable_state_dict`).
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
