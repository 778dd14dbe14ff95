# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""What inference needs, written into every checkpoint; resumed checkpoints checked first.

A Lightning checkpoint holds the task's weights and ``__init__`` arguments, but not the
normalisation the datamodule applied, the band order or the class names: whole-scene
prediction (``torchgeo-gfm predict``) needs them. :class:`InferenceMetadata` writes them
under :data:`INFERENCE_KEY` as plain Python values (readable with
``torch.load(weights_only=True)``)::

    {
        'version': 1,
        'kind': 'segmentation',        # or 'change', 'classification', 'super_resolution'
        'mode': 'multiclass',          # 'binary', 'multilabel'; 'regression' for SR
        'task': 'torchgeo_gfm.tasks.finetune.FinetuneSemanticSegmentation',
        'in_channels': 3,
        'bands': ['B04', 'B03', 'B02'],  # names where the data knows them, else 0..C-1
        'mean': [123.675, 116.28, 103.53],  # per band, on the data's own scale
        'std': [58.395, 57.12, 57.375],     # None (both) without a datamodule
        'classes': ['background', 'building'],  # or None
        'outputs': 1,                  # channels of the prediction
        'scale': 1,                    # output pixels per input pixel (SR)
        'multiple': 32,                # tile sizes must be multiples of this
        'datamodule': 'torchgeo_gfm.datamodules.whu_building.WHUBuildingDataModule',
        'sensor': {'name': 's2_l1c', 'bands': [...], ...},  # or None (below)
    }

``sensor`` (added in 0.2, :meth:`~torchgeo_gfm.sensors.Sensor.to_dict`) is the task's
``sensor`` hyper-parameter, else the datamodule's ``sensor`` (multispectral datamodules
yield the sensor's stored values and the model sees them normalised by the sensor's
statistics); ``predict`` then normalises with it. None for the RGB datamodules of 0.1,
which record their ``mean``/``std`` instead.

This package's tasks write it themselves (:class:`InferenceMetadataMixin`, also in
weights-only checkpoints); TorchGeo's tasks do when the callback is in the trainer's
callbacks, as every shipped fine-tuning config has it. Statistics are recorded as the
datamodule has them; :mod:`torchgeo_gfm.scene.checkpoints` checks them when loading.

The callback also checks a checkpoint Lightning restores (``--ckpt_path`` of ``torchgeo
fit``) before Lightning reads it: a file that is not a checkpoint, asks to run code, or
was written by another task is refused with an error naming the file, instead of
Lightning's bare unpickling error.

.. versionadded:: 0.1
"""

import os
from collections.abc import Sequence
from typing import Any, Literal

import torch
from lightning.pytorch import Callback, LightningDataModule, LightningModule, Trainer
from lightning.pytorch.plugins.io import CheckpointIO
from torch import nn
from torchgeo.tasks import ChangeDetection, Classification, SemanticSegmentation

from ..models.checkpoint import GFMCheckpointError, read_checkpoint

#: checkpoint key of the metadata
INFERENCE_KEY = 'torchgeo_gfm_inference'
#: version of the metadata this package writes (and the newest it reads)
INFERENCE_VERSION = 1

Kind = Literal['segmentation', 'change', 'classification', 'super_resolution']


_RESUMABLE = (
    'a Lightning checkpoint (.ckpt) written by `torchgeo fit` with the same task'
)


def task_classes() -> dict[Kind, type[nn.Module]]:
    """The task classes the scene engine applies, by kind, most specific first.

    Returns:
        ``{kind: base class}``.

    .. versionadded:: 0.1
    """
    from .super_resolution import SuperResolution  # it takes InferenceMetadataMixin

    return {
        'super_resolution': SuperResolution,
        'change': ChangeDetection,
        'classification': Classification,
        'segmentation': SemanticSegmentation,
    }


def task_kind(cls: type) -> Kind | None:
    """The kind of task *cls* is, or None for a task the scene engine does not apply.

    Args:
        cls: a task class.

    Returns:
        'segmentation', 'change', 'classification', 'super_resolution' or None.

    .. versionadded:: 0.1
    """
    for kind, base in task_classes().items():
        if issubclass(cls, base):
            return kind
    return None


def class_path(cls: type) -> str:
    """The importable dotted path of *cls*.

    Args:
        cls: a class.

    Returns:
        ``module.QualifiedName``.

    .. versionadded:: 0.1
    """
    return f'{cls.__module__}.{cls.__qualname__}'


def inference_metadata(
    module: LightningModule, datamodule: LightningDataModule | None = None
) -> dict[str, Any] | None:
    """What predicting with *module* needs, as plain Python values.

    Args:
        module: the task.
        datamodule: its training datamodule (normalisation, bands, class names).

    Returns:
        The metadata (see the module's docstring), or None if *module* is not a task
        the scene engine applies.

    .. versionadded:: 0.1
    """
    kind = task_kind(type(module))
    if kind is None:
        return None
    hp = dict(module.hparams)
    channels = int(hp.get('in_channels', 3))
    outputs = _outputs(kind, hp)
    mean, std = (_statistic(datamodule, n, channels) for n in ('mean', 'std'))
    return {
        'version': INFERENCE_VERSION,
        'kind': kind,
        'mode': 'regression' if kind == 'super_resolution' else str(hp.get('task')),
        'task': class_path(type(module)),
        'in_channels': channels,
        'bands': _bands(datamodule, channels),
        'mean': mean if std is not None else None,
        'std': std if mean is not None else None,
        'classes': _classes(datamodule, outputs, hp.get('task')),
        'outputs': outputs,
        'scale': int(hp.get('scale', 1)) if kind == 'super_resolution' else 1,
        'multiple': _multiple(module),
        'datamodule': class_path(type(datamodule)) if datamodule else None,
        'sensor': _sensor(hp.get('sensor'), datamodule),
    }


def _sensor(
    hparam: Any, datamodule: LightningDataModule | None
) -> dict[str, Any] | None:
    """The sensor of the task's inputs: its hyper-parameter, else the datamodule's."""
    from ..sensors import get_sensor

    found = hparam if hparam is not None else getattr(datamodule, 'sensor', None)
    return None if found is None else get_sensor(found).to_dict()


def _outputs(kind: Kind, hp: dict[str, Any]) -> int:
    if kind == 'super_resolution':
        return int(hp['out_channels'])
    if hp.get('task') == 'binary':
        return 1
    return int(hp.get('num_classes') or hp.get('num_labels') or 1)


def _multiple(module: LightningModule) -> int:
    """The model's total stride: tiles must be multiples of it."""
    if module.hparams.get('model') == 'fcn':  # TorchGeo's FCN: no downsampling
        return 1
    stride = getattr(getattr(module, 'model', None), 'encoder', None)
    stride = getattr(stride, 'output_stride', None)  # smp encoders
    return stride if isinstance(stride, int) and stride > 0 else 32


def _statistic(
    datamodule: LightningDataModule | None, name: str, channels: int
) -> list[float] | None:
    """The datamodule's ``mean``/``std`` as floats, one per band where it can tell."""
    value = getattr(datamodule, name, None)
    if value is None:
        return None
    try:
        values = [float(v) for v in torch.as_tensor(value).flatten()]
    except (TypeError, ValueError, RuntimeError):
        return None
    if len(values) == 1:
        return values * channels
    # change-detection datamodules repeat them per date
    if len(values) == 2 * channels and values[:channels] == values[channels:]:
        return values[:channels]
    return values  # checked, and refused if wrong, when loaded


def _datasets(datamodule: LightningDataModule | None) -> list[Any]:
    """The datamodule's datasets (subsets unwrapped), then its dataset class."""
    found = []
    for name in ('train_dataset', 'dataset', 'val_dataset', 'test_dataset'):
        dataset = getattr(datamodule, name, None)
        for _ in range(4):  # Subset of a Subset ...
            inner = getattr(dataset, 'dataset', None)
            if not isinstance(inner, torch.utils.data.Dataset):
                break
            dataset = inner
        if dataset is not None:
            found.append(dataset)
    return [*found, getattr(datamodule, 'dataset_class', None)]


def _names(value: object, length: int) -> list[str] | None:
    if isinstance(value, str) or not isinstance(value, Sequence):
        return None
    names = list(value)
    if len(names) == length and all(isinstance(v, str) for v in names):
        return names
    return None


def _bands(datamodule: LightningDataModule | None, channels: int) -> list[str | int]:
    kwargs = getattr(datamodule, 'kwargs', None)
    candidates = [getattr(datamodule, 'bands', None)]
    candidates += [getattr(d, 'bands', None) for d in _datasets(datamodule)]
    candidates.append(kwargs.get('bands') if isinstance(kwargs, dict) else None)
    for value in candidates:
        if names := _names(value, channels):
            return list(names)
    return list(range(channels))


def _classes(
    datamodule: LightningDataModule | None, outputs: int, mode: object
) -> list[str] | None:
    length = 2 if mode == 'binary' else outputs
    for dataset in _datasets(datamodule):
        if names := _names(getattr(dataset, 'classes', None), length):
            return names
        # BigEarthNet: {19: [...], 43: [...]}
        sets = getattr(dataset, 'class_sets', None)
        if isinstance(sets, dict) and (names := _names(sets.get(length), length)):
            return names
    return None


def check_resume_checkpoint(
    path: str | os.PathLike[str], module: LightningModule
) -> None:
    """Refuse a checkpoint to resume from that is not one of *module*'s task.

    Reads the file with ``weights_only=True`` (nothing in it runs).

    Args:
        path: the checkpoint (``--ckpt_path``).
        module: the task being trained.

    Raises:
        GFMCheckpointError: if the file is missing, is not a Lightning checkpoint, asks
            to run code, or was written by another task; the message names the file.

    .. versionadded:: 0.1
    """
    hint = (
        'Pass a .ckpt that `torchgeo fit` wrote for this model (e.g. '
        '<log dir>/checkpoints/last.ckpt), or drop --ckpt_path to start afresh.'
    )
    try:
        checkpoint = read_checkpoint(path, _RESUMABLE)
    except FileNotFoundError:
        raise GFMCheckpointError(
            f'--ckpt_path {path}: no such file; expected {_RESUMABLE}. {hint}'
        ) from None
    except GFMCheckpointError as error:
        raise GFMCheckpointError(f'--ckpt_path {error} {hint}') from None
    if not isinstance(checkpoint, dict) or not isinstance(
        checkpoint.get('state_dict'), dict
    ):
        raise GFMCheckpointError(
            f'--ckpt_path {path}: holds a {type(checkpoint).__name__} without a '
            f'state_dict, not a Lightning checkpoint; expected {_RESUMABLE}. {hint}'
        )
    written_by = _writer(checkpoint)
    ours = type(module).__name__
    if written_by is not None and written_by.rpartition('.')[2] != ours:
        raise GFMCheckpointError(
            f'--ckpt_path {path}: was written by {written_by}, not {ours}; expected '
            f'{_RESUMABLE}. {hint}'
        )


def _writer(checkpoint: dict[str, Any]) -> str | None:
    """The task class that wrote *checkpoint*, where it says."""
    meta = checkpoint.get(INFERENCE_KEY)
    if isinstance(meta, dict) and isinstance(meta.get('task'), str):
        return str(meta['task'])
    hparams = checkpoint.get('hyper_parameters')
    if isinstance(hparams, dict) and isinstance(hparams.get('_class_path'), str):
        return str(hparams['_class_path'])
    return None


class InferenceMetadata(Callback):
    """Write what inference needs into every checkpoint; check checkpoints resumed from.

    Name it under ``trainer.callbacks`` of a ``torchgeo fit`` config to record the
    metadata of TorchGeo's tasks (this package's tasks record it themselves)::

        trainer:
          callbacks:
            - class_path: torchgeo_gfm.tasks.InferenceMetadata

    .. versionadded:: 0.1
    """

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Check the checkpoint Lightning is about to restore, before it reads it.

        ``setup`` runs before Lightning restores ``--ckpt_path``, but Lightning tells the
        path only when it reads the file (``trainer.ckpt_path`` is set there); so the
        strategy's checkpoint reader is wrapped by one that checks the file first.

        Args:
            trainer: the trainer.
            pl_module: the task.
            stage: 'fit', 'validate', 'test' or 'predict'.
        """
        strategy = trainer.strategy
        if not isinstance(strategy.checkpoint_io, _CheckedCheckpointIO):
            strategy.checkpoint_io = _CheckedCheckpointIO(
                strategy.checkpoint_io, pl_module
            )

    def teardown(
        self, trainer: Trainer, pl_module: LightningModule, stage: str
    ) -> None:
        """Give the strategy its own checkpoint reader back.

        Args:
            trainer: the trainer.
            pl_module: the task.
            stage: 'fit', 'validate', 'test' or 'predict'.
        """
        io = trainer.strategy.checkpoint_io
        if isinstance(io, _CheckedCheckpointIO):
            trainer.strategy.checkpoint_io = io.inner

    def on_save_checkpoint(
        self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        """Write the metadata under :data:`INFERENCE_KEY`.

        Args:
            trainer: the trainer.
            pl_module: the task.
            checkpoint: the checkpoint being saved.
        """
        write_metadata(checkpoint, pl_module, trainer)


def write_metadata(
    checkpoint: dict[str, Any], module: LightningModule, trainer: Trainer | None
) -> None:
    """Put :func:`inference_metadata` into *checkpoint* (nothing for other tasks).

    Args:
        checkpoint: the checkpoint being saved.
        module: the task.
        trainer: its trainer (for the datamodule), if any.

    .. versionadded:: 0.1
    """
    datamodule = getattr(trainer, 'datamodule', None) if trainer else None
    meta = inference_metadata(module, datamodule)
    if meta is not None:
        checkpoint[INFERENCE_KEY] = meta


class _CheckedCheckpointIO(CheckpointIO):
    """The strategy's checkpoint IO, checking a local file before it is loaded."""

    def __init__(self, inner: CheckpointIO, module: LightningModule) -> None:
        self.inner, self.module = inner, module

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None
    ) -> None:
        self.inner.save_checkpoint(checkpoint, path, storage_options)

    def load_checkpoint(
        self, path: Any, map_location: Any = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        if '://' not in str(path):  # remote files: Lightning's own errors
            check_resume_checkpoint(path, self.module)
        return self.inner.load_checkpoint(path, map_location, weights_only)

    def remove_checkpoint(self, path: Any) -> None:
        self.inner.remove_checkpoint(path)

    def teardown(self) -> None:
        self.inner.teardown()


class InferenceMetadataMixin(LightningModule):
    """For tasks: write the metadata in every checkpoint, weights-only ones too.

    Lightning skips callbacks' ``on_save_checkpoint`` for weights-only checkpoints but
    always calls the task's; :class:`InferenceMetadata` is also attached (checks of the
    checkpoint resumed from).

    .. versionadded:: 0.1
    """

    def configure_callbacks(self) -> Sequence[Callback] | Callback:
        """Add :class:`InferenceMetadata` to the task's callbacks.

        Returns:
            The callbacks.
        """
        others = super().configure_callbacks()
        others = [others] if isinstance(others, Callback) else list(others)
        return [*others, InferenceMetadata()]

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Write the metadata under :data:`INFERENCE_KEY`.

        Args:
            checkpoint: the checkpoint being saved.
        """
        super().on_save_checkpoint(checkpoint)
        write_metadata(checkpoint, self, self._trainer)
