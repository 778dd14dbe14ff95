# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""A fine-tuned checkpoint, rebuilt offline, with the normalisation it was trained with.

What the checkpoint is comes from Lightning's checkpoint: ``hyper_parameters`` (the task's
``__init__`` arguments; ``_class_path`` too when trained with ``torchgeo fit``) and the
weights. The task is rebuilt with ``weights=None`` (nothing is downloaded; every weight
comes from the checkpoint) by ``TaskClass.load_from_checkpoint(..., weights_only=True)``.

The class rebuilt is the one ``_class_path`` names when it is a subclass of a task the engine
applies (e.g. ``FinetuneClassification``, whose ``model_kwargs`` shape the model), else the
base class of the kind inferred from the hyper-parameters.

The normalisation is what the datamodule's ``on_after_batch_transfer`` applied,
``(x - mean) / std``. A datamodule that calls ``save_hyperparameters()`` has its arguments
and class stored by ``torchgeo fit`` under ``datamodule_hyper_parameters``
(``_class_path``). TorchGeo's datamodules (and this package's) do not, so ``torchgeo fit``
records them only in the ``config.yaml`` that LightningCLI writes to the run's log folder
(the parent of ``checkpoints/``); that file is used when its model is the checkpoint's.
Either way the datamodule is rebuilt from its arguments (a TorchGeo datamodule reads no
data in ``__init__``) and its ``mean``/``std`` are read. Where that is impossible (a
checkpoint saved without a datamodule or moved away from its run, an unknown class) the
checkpoint is refused unless the caller gives ``mean``/``std`` (``--mean/--std``) or a
named normalisation (``--normalize imagenet`` for our datamodules' ImageNet statistics on
0-255 data, ``--normalize unit`` for TorchGeo's default division by 255).

.. versionadded:: 0.1
"""

import argparse
import importlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from lightning.pytorch import LightningDataModule
from torch import Tensor, nn
from torchgeo.tasks import ChangeDetection, Classification, SemanticSegmentation

from ..tasks import SuperResolution
from .errors import SceneError

Kind = Literal['segmentation', 'change', 'classification', 'super_resolution']

#: task classes the scene engine applies, most specific first
TASKS: dict[Kind, type[nn.Module]] = {
    'super_resolution': SuperResolution,
    'change': ChangeDetection,
    'classification': Classification,
    'segmentation': SemanticSegmentation,
}

#: named normalisations (mean, std per band, on the data's own scale)
NAMED = {
    # our datamodules: ImageNet statistics on 0-255 data (torchgeo_gfm.datamodules.utils)
    'imagenet': ((123.675, 116.28, 103.53), (58.395, 57.12, 57.375)),
    # TorchGeo's default (BaseDataModule): divide by 255
    'unit': ((0.0,), (255.0,)),
    'none': ((0.0,), (1.0,)),
}


@dataclass
class Predictor:
    """A rebuilt task, ready to predict normalised tiles.

    Attributes:
        task: the Lightning task (eval mode).
        kind: 'segmentation', 'change', 'classification' or 'super_resolution'.
        mode: 'binary', 'multiclass' or 'multilabel' ('regression' for SR).
        in_channels: bands per image.
        outputs: channels of the probabilities (classes, labels, 1 for binary; SR bands).
        scale: output pixels per input pixel (SR), else 1.
        multiple: tile sizes must be multiples of this (the model's total stride).
        mean: per-band mean ``[C]``.
        std: per-band std ``[C]``.
        source: where the normalisation came from (for the log).

    .. versionadded:: 0.1
    """

    task: nn.Module
    kind: Kind
    mode: str
    in_channels: int
    outputs: int
    scale: int
    multiple: int
    mean: Tensor
    std: Tensor
    source: str

    @property
    def images(self) -> int:
        """Rasters the model takes (2 for change detection)."""
        return 2 if self.kind == 'change' else 1

    def to(self, device: torch.device) -> 'Predictor':
        """Move the task and statistics to *device*.

        Args:
            device: the target device.

        Returns:
            self
        """
        self.task.to(device)
        self.mean, self.std = self.mean.to(device), self.std.to(device)
        return self

    @torch.inference_mode()
    def __call__(self, images: Tensor) -> Tensor:
        """Probabilities (or SR values) of a batch of raw tiles.

        Args:
            images: ``[B, T, C, H, W]`` raw values (T = 1, or 2 for change detection).

        Returns:
            ``[B, K, H * scale, W * scale]`` per pixel, or ``[B, K]`` per chip
            (classification), float32.
        """
        x = (images - self.mean[:, None, None]) / self.std[:, None, None]
        batch = {'image': x if self.kind == 'change' else x[:, 0]}
        out = self.task.predict_step(batch, 0)  # type: ignore[operator]
        if isinstance(out, dict):  # SemanticSegmentation returns bounds too
            out = out['probabilities']
        return out.float()


def load_predictor(
    path: str | os.PathLike[str],
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    normalize: str | None = None,
    kind: Kind | None = None,
) -> Predictor:
    """Rebuild a fine-tuned task from its Lightning checkpoint, offline.

    Args:
        path: the ``.ckpt`` file.
        mean: per-band mean (or one value), overriding the checkpoint's.
        std: per-band std (or one value), overriding the checkpoint's.
        normalize: a named normalisation ('imagenet', 'unit', 'none') instead.
        kind: the task kind, where the checkpoint does not say (saved without
            ``torchgeo fit``, and segmentation and change detection cannot be told apart).

    Returns:
        The predictor on the CPU, in eval mode.

    Raises:
        SceneError: if the file is not a checkpoint of a task the scene engine applies,
            or its normalisation cannot be known and none is given.

    .. versionadded:: 0.1
    """
    path = os.fspath(path)
    checkpoint = _read(path)
    hparams = dict(checkpoint.get('hyper_parameters') or {})
    kind = kind or _kind(path, hparams, checkpoint['state_dict'])
    task = _load_task(path, _task_class(hparams, kind))
    channels = int(hparams.get('in_channels', 3))
    mu, sigma, source = _normalisation(path, checkpoint, channels, mean, std, normalize)
    return Predictor(
        task=task.eval(),
        kind=kind,
        mode=str(hparams.get('task', 'regression')),
        in_channels=channels,
        outputs=_outputs(kind, hparams),
        scale=int(hparams.get('scale', 1)) if kind == 'super_resolution' else 1,
        multiple=1 if hparams.get('model') == 'fcn' else 32,
        mean=mu,
        std=sigma,
        source=source,
    )


def _read(path: str) -> dict[str, Any]:
    if not os.path.isfile(path):
        raise SceneError(
            f'{path}: no such file; expected a Lightning checkpoint (.ckpt)'
        )
    try:
        checkpoint = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as error:  # noqa: BLE001  (any unpickling error: name the file)
        raise SceneError(
            f'{path}: cannot be read as a Lightning checkpoint ({type(error).__name__}: '
            f'{str(error).splitlines()[0][:200]}); expected the .ckpt of a fine-tuned task'
        ) from None
    if not isinstance(checkpoint, dict) or 'state_dict' not in checkpoint:
        raise SceneError(
            f'{path}: is not a Lightning checkpoint (no state_dict); expected the .ckpt '
            'of a fine-tuned SemanticSegmentation, ChangeDetection, Classification or '
            'SuperResolution task (for backbone weights use `torchgeo-gfm embed`)'
        )
    return checkpoint


def _kind(path: str, hparams: dict[str, Any], state_dict: dict[str, Tensor]) -> Kind:
    """Which task wrote the checkpoint: its class path, else its arguments."""
    class_path = hparams.get('_class_path')
    if class_path:
        cls = _import(class_path)
        for kind, base in TASKS.items():
            if isinstance(cls, type) and issubclass(cls, base):
                return kind
        raise SceneError(
            f'{path}: is a checkpoint of {class_path}; the scene engine applies '
            'SemanticSegmentation, ChangeDetection, Classification (multi-label too) '
            'and SuperResolution tasks'
        )
    if {'scale', 'out_channels', 'backbone'} <= hparams.keys():
        return 'super_resolution'
    if 'model' in hparams and 'backbone' not in hparams and 'task' in hparams:
        return 'classification'
    if {'model', 'backbone', 'task'} <= hparams.keys():
        model = str(hparams['model'])
        if model.startswith('fcsiam') or model == 'changevit':
            return 'change'
        return (
            'change'
            if _first_conv_in(state_dict) == 2 * hparams.get('in_channels', 3)
            else 'segmentation'
        )
    raise SceneError(
        f'{path}: its hyper_parameters ({sorted(hparams)[:8]}) are not those of a '
        'TorchGeo SemanticSegmentation, ChangeDetection, Classification or a '
        'torchgeo_gfm SuperResolution task; pass the checkpoint of one of them'
    )


def _task_class(hparams: dict[str, Any], kind: Kind) -> type[nn.Module]:
    """The recorded task class if it is one of *kind*, else *kind*'s base class.

    A subclass may build its model from arguments the base class ignores (the Finetune*
    tasks pass ``model_kwargs`` such as ``window_size`` to timm): rebuilt as the base
    class, its weights would not fit. An unimportable class (with *kind* given by the
    caller) falls back to the base class, which may still fit.
    """
    class_path = hparams.get('_class_path')
    if class_path:
        try:
            cls = _import(class_path)
        except SceneError:
            return TASKS[kind]
        if isinstance(cls, type) and issubclass(cls, TASKS[kind]):
            return cls
    return TASKS[kind]


def _first_conv_in(state_dict: dict[str, Tensor]) -> int | None:
    """Input channels of the first 4-D weight (the stem)."""
    for value in state_dict.values():
        if value.ndim == 4:
            return int(value.shape[1])
    return None


def _import(class_path: str) -> object:
    module, _, name = class_path.rpartition('.')
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        raise SceneError(
            f'{class_path}: named by the checkpoint, cannot be imported; install the '
            'package that defines it'
        ) from None


def _load_task(path: str, cls: type[nn.Module]) -> nn.Module:
    # weights=None: every weight comes from the checkpoint, nothing is downloaded
    try:
        return cls.load_from_checkpoint(  # type: ignore[attr-defined]
            path, map_location='cpu', weights_only=True, weights=None
        )
    except Exception as error:  # noqa: BLE001  (the task's own error, with the file)
        raise SceneError(
            f'{path}: cannot be rebuilt as a {cls.__name__} ({type(error).__name__}: '
            f'{str(error).splitlines()[0][:300]})'
        ) from None


def _outputs(kind: Kind, hparams: dict[str, Any]) -> int:
    if kind == 'super_resolution':
        return int(hparams['out_channels'])
    if hparams.get('task') == 'binary':
        return 1
    return int(hparams.get('num_classes') or hparams.get('num_labels') or 1)


def _normalisation(
    path: str,
    checkpoint: dict[str, Any],
    channels: int,
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
    normalize: str | None,
) -> tuple[Tensor, Tensor, str]:
    """Mean and std per band: given, named, or the training datamodule's."""
    if (mean is None) != (std is None):
        raise SceneError('--mean and --std go together: pass both, or neither')
    if mean is not None and std is not None:
        pair, source = (mean, std), 'given --mean/--std'
    elif normalize is not None:
        if normalize not in NAMED:
            raise SceneError(
                f'--normalize {normalize!r}: expected one of {sorted(NAMED)}'
            )
        pair, source = NAMED[normalize], f'--normalize {normalize}'
    else:
        pair, source = _from_datamodule(path, checkpoint)
    return (
        _per_band(path, pair[0], channels, 'mean'),
        _per_band(path, pair[1], channels, 'std'),
        source,
    )


def _from_datamodule(
    path: str, checkpoint: dict[str, Any]
) -> tuple[tuple[Sequence[float], Sequence[float]], str]:
    hparams = dict(checkpoint.get('datamodule_hyper_parameters') or {})
    hint = (
        'pass the statistics the model was trained with: --mean M1,M2,.. --std S1,S2,.. '
        "(on the raster's own scale), or --normalize imagenet (torchgeo_gfm datamodules: "
        'ImageNet mean/std on 0-255 data) or --normalize unit (TorchGeo default: / 255)'
    )
    if 'mean' in hparams and 'std' in hparams:  # e.g. GeoPileDataModule
        return (hparams['mean'], hparams['std']), 'datamodule hyper_parameters'
    class_path = hparams.pop('_class_path', None)
    config = None
    if not class_path:
        # datamodules without save_hyperparameters() (TorchGeo's, ours): `torchgeo fit`
        # records them only in the run's config.yaml
        found = _run_config(path, dict(checkpoint.get('hyper_parameters') or {}))
        if found is None:
            raise SceneError(
                f'{path}: does not record the normalisation it was trained with (no '
                'datamodule in the checkpoint, and no config.yaml of its `torchgeo fit` '
                f'run in {Path(path).parent.parent} or {Path(path).parent} with the '
                f"checkpoint's model); {hint}"
            )
        config, class_path, hparams = found
    cls = _import(class_path)
    if not (isinstance(cls, type) and issubclass(cls, LightningDataModule)):
        raise SceneError(
            f'{path}: datamodule {class_path} is not a LightningDataModule; {hint}'
        )
    hparams.pop('_instantiator', None)
    try:
        datamodule = cls(**hparams)  # TorchGeo datamodules read no data in __init__
        stats = (_values(datamodule.mean), _values(datamodule.std))  # type: ignore[attr-defined]
    except Exception as error:  # noqa: BLE001  (a datamodule that needs more than its hparams)
        raise SceneError(
            f'{path}: the normalisation of its datamodule {class_path} cannot be '
            f'recovered ({type(error).__name__}: {error}); {hint}'
        ) from None
    return stats, f'{class_path}.mean/std' + (f' (from {config})' if config else '')


#: where LightningCLI's SaveConfigCallback (``torchgeo fit``) leaves the run's config,
#: from a checkpoint's folder: the log folder above ``checkpoints/``, or beside it
_CONFIG_PLACES = ('..', '.')


def _run_config(
    path: str, model_hparams: dict[str, Any]
) -> tuple[str, str, dict[str, Any]] | None:
    """The datamodule of the ``config.yaml`` saved by the run that wrote *path*.

    Args:
        path: the checkpoint.
        model_hparams: its ``hyper_parameters``.

    Returns:
        (config file, datamodule class path, its arguments), or None if no config.yaml
        beside the run names a datamodule and the checkpoint's model.
    """
    import yaml

    folder = Path(path).resolve().parent
    for place in _CONFIG_PLACES:
        candidate = (folder / place / 'config.yaml').resolve()
        try:
            config = yaml.safe_load(candidate.read_text())
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue
        if not isinstance(config, dict):
            continue
        model, data = config.get('model'), config.get('data')
        if not (isinstance(data, dict) and isinstance(data.get('class_path'), str)):
            continue
        # `fit` overwrites config.yaml where runs share a folder (no logger): use it only
        # if its model is the checkpoint's
        if not (isinstance(model, dict) and _same_model(model, model_hparams)):
            continue
        kwargs = {**(data.get('init_args') or {}), **(data.get('dict_kwargs') or {})}
        return str(candidate), data['class_path'], kwargs
    return None


def _same_model(model: dict[str, Any], hparams: dict[str, Any]) -> bool:
    """Whether a config's ``model`` section describes the checkpoint's task."""
    class_path = hparams.get('_class_path')
    if class_path and model.get('class_path') != class_path:
        return False
    args = model.get('init_args') or {}
    if not isinstance(args, dict):
        return False
    shared = [k for k in hparams if k in args and not k.startswith('_')]
    return bool(shared) and all(_plain(args[k]) == _plain(hparams[k]) for k in shared)


def _plain(value: object) -> object:
    """Tuples as lists, recursively (YAML has lists only)."""
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _values(x: object) -> list[float]:
    return [float(v) for v in torch.as_tensor(x).flatten()]


def _per_band(path: str, values: Sequence[float], channels: int, name: str) -> Tensor:
    t = torch.as_tensor(list(values), dtype=torch.float32).flatten()
    if t.numel() == 1:
        t = t.repeat(channels)
    if t.numel() == 2 * channels:  # change-detection datamodules repeat them per date
        t = t[:channels]
    if t.numel() != channels:
        raise SceneError(
            f'{path}: {name} has {t.numel()} values, the model takes {channels} bands; '
            f'pass --{name} with {channels} values (or one)'
        )
    if name == 'std' and bool((t <= 0).any()):
        raise SceneError(f'--std {t.tolist()}: every value must be > 0')
    return t


def add_scene_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options ``predict`` and ``embed`` share: bands, batch, device, outputs, stats.

    Args:
        parser: the sub-command's parser.

    .. versionadded:: 0.1
    """
    parser.add_argument(
        '--bands', help="1-based bands to read, e.g. '3,2,1' (default: all)"
    )
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument(
        '--device', default='cuda' if torch.cuda.is_available() else 'cpu'
    )
    parser.add_argument(
        '--overwrite', action='store_true', help='replace existing outputs'
    )
    parser.add_argument(
        '--mean', type=_floats, help="per-band mean, e.g. '123.7,116.3,103.5'"
    )
    parser.add_argument('--std', type=_floats, help='per-band std (with --mean)')


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(',')]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f'{text!r}: expected numbers separated by commas'
        ) from None
