# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""The per-band normalisation a fine-tuned checkpoint was trained with, checked.

First found of: what the caller gives (``--mean/--std``, or a named normalisation in
:data:`NAMED`), the sensor the checkpoint records (its inference metadata's ``sensor``,
or ``--sensor`` for a checkpoint that records none: :func:`choose_sensor`; the raster's
band count is then checked against it, :func:`check_sensor_bands`), the checkpoint's
inference metadata ``mean``/``std``, the datamodule's hyper-parameters
(``datamodule_hyper_parameters``, for datamodules that call ``save_hyperparameters()``),
or the ``config.yaml`` that LightningCLI wrote to the run's log folder (the parent of
``checkpoints/``), used only when its model is the checkpoint's; the datamodule is then
rebuilt from its arguments (a TorchGeo datamodule reads no data in ``__init__``) and its
``mean``/``std`` are read. Where that is impossible the checkpoint is refused with what to
pass instead. Every set of statistics goes through :func:`per_band`.

.. versionadded:: 0.2
   Moved here from :mod:`torchgeo_gfm.scene.predictor`.
"""

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from .._utils import plain
from ..sensors import Sensor, SensorError, get_sensor
from .errors import SceneError, first_line, short

if TYPE_CHECKING:
    from .checkpoints import Checkpoint

#: what ``--sensor`` takes
SensorLike = str | os.PathLike[str] | Mapping[str, Any] | Sensor

#: named normalisations (mean, std per band, on the data's own scale)
NAMED = {
    # our datamodules: ImageNet statistics on 0-255 data (torchgeo_gfm.datamodules.utils)
    'imagenet': ((123.675, 116.28, 103.53), (58.395, 57.12, 57.375)),
    # TorchGeo's default (BaseDataModule): divide by 255
    'unit': ((0.0,), (255.0,)),
    'none': ((0.0,), (1.0,)),
}


#: what to pass where the normalisation is not recorded
_HINT = (
    'pass the sensor of its inputs (--sensor NAME|YAML, e.g. --sensor s2), or the '
    'statistics the model was trained with: --mean M1,M2,.. --std S1,S2,.. '
    "(on the raster's own scale), or --normalize imagenet (torchgeo_gfm datamodules: "
    'ImageNet mean/std on 0-255 data) or --normalize unit (TorchGeo default: / 255); '
    'checkpoints of runs with torchgeo_gfm.tasks.InferenceMetadata in trainer.callbacks '
    '(the shipped configs) record them'
)


def per_band(
    values: object, channels: int, name: str, *, std: bool | None = None
) -> Tensor:
    """Per-band statistics, checked: one value per band, finite, std normal and > 0.

    One value is repeated for every band; ``2 * channels`` equal halves (change
    detection datamodules repeat them per date) are taken once.

    Args:
        values: numbers (a sequence, a tensor, an array).
        channels: bands of the input.
        name: what they are, for messages, ending in ``mean`` or ``std`` (e.g.
            ``'--std'``, ``'model.ckpt: metadata mean'``).
        std: whether they are a std; default: *name* ends in ``std``.

    Returns:
        ``[channels]`` float32.

    Raises:
        SceneError: for values that are not numbers, of another length, non-finite (or
            beyond float32), or for a std that is not a normal float > 0 (zero,
            negative, subnormal).

    .. versionadded:: 0.1
    """
    is_std = name.endswith('std') if std is None else std
    remedy = (
        f'pass {name.split()[0]} with {channels} values (or one)'
        if name.startswith('--')
        else 'pass --sensor NAME|YAML with the sensor of the bands, or --mean and --std '
        'with the statistics the model was trained with'
    )
    wanted = f'{channels} finite values (or one){", each > 0" if is_std else ""}'
    try:
        t = torch.as_tensor(values, dtype=torch.float64).flatten().float()
    except (TypeError, ValueError, RuntimeError, OverflowError):
        raise SceneError(
            f'{name} {short(values)}: not numbers; expected {wanted}; {remedy}'
        ) from None
    half = t[:channels]
    if t.numel() == 2 * channels and torch.equal(half, t[channels:]):
        t = half
    if t.numel() == 1:
        t = t.repeat(channels)
    if t.numel() != channels:
        raise SceneError(
            f'{name} {short(t.tolist())}: {t.numel()} values, the model takes '
            f'{channels} bands; expected {wanted}; {remedy}'
        )
    bad = ~torch.isfinite(t)
    if is_std:
        bad |= t < torch.finfo(torch.float32).tiny  # zero, negative or subnormal
    if bool(bad.any()):
        which = bad.nonzero().flatten().tolist()
        raise SceneError(
            f'{name} {short(t.tolist())}: band(s) {which} are '
            f'{"not normal floats > 0" if is_std else "not finite"}; expected {wanted}; '
            f'{remedy}'
        )
    return t


def normalisation(
    ckpt: 'Checkpoint',
    channels: int,
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
    normalize: str | None,
    trusted: Sequence[str],
    sensor: Sensor | None = None,
) -> tuple[Tensor, Tensor, str]:
    """Mean and std per band: given, named, the sensor's, recorded, or the datamodule's.

    Args:
        ckpt: the checkpoint.
        channels: bands the model takes.
        mean: per-band mean given by the caller (with *std*), or None.
        std: per-band std given by the caller, or None.
        normalize: a name in :data:`NAMED` instead, or None.
        trusted: packages a recorded datamodule may come from.
        sensor: the sensor of the model's inputs (:func:`choose_sensor`), or None.

    Returns:
        ``[channels]`` mean and std (float32), and where they came from (for the log).

    Raises:
        SceneError: for statistics that :func:`per_band` refuses, or none to be found.

    .. versionadded:: 0.2
    """
    from ..tasks.inference import INFERENCE_KEY

    path = ckpt.path
    if (mean is None) != (std is None):
        raise SceneError('--mean and --std go together: pass both, or neither')
    names = ('--mean', '--std')
    pair: tuple[object, object]
    if mean is not None and std is not None:
        pair, source = (mean, std), 'given --mean/--std'
    elif normalize is not None:
        if normalize not in NAMED:
            raise SceneError(
                f'--normalize {normalize!r}: expected one of {sorted(NAMED)}'
            )
        pair, source = NAMED[normalize], f'--normalize {normalize}'
    elif sensor is not None:
        pair, source = (sensor.mean, sensor.std), f'sensor {sensor.name}'
        names = (f'sensor {sensor.name}: mean', f'sensor {sensor.name}: std')
    elif ckpt.meta is not None and ckpt.meta.get('mean') is not None:
        pair = (ckpt.meta['mean'], ckpt.meta['std'])
        names = (f'{path}: {INFERENCE_KEY} mean', f'{path}: {INFERENCE_KEY} std')
        datamodule = ckpt.meta.get('datamodule')
        source = f'checkpoint metadata ({datamodule or "datamodule"}.mean/std)'
    else:
        pair, source = _from_datamodule(ckpt, trusted)
        names = (f'{path}: {source} mean', f'{path}: {source} std')
    return (
        per_band(pair[0], channels, names[0]),
        per_band(pair[1], channels, names[1]),
        source,
    )


def recorded_sensor(ckpt: 'Checkpoint') -> Sensor | None:
    """The sensor a checkpoint records: its inference metadata's, else its task's.

    Args:
        ckpt: the checkpoint.

    Returns:
        The sensor, or None where none is recorded.

    Raises:
        SceneError: for a recorded sensor that is not valid.

    .. versionadded:: 0.2
    """
    from .checkpoints import REWRITE

    found = (ckpt.meta or {}).get('sensor', ckpt.hparams.get('sensor'))
    if found is None:
        return None
    try:
        return get_sensor(found)
    except (SensorError, TypeError) as error:
        raise SceneError(
            f'{ckpt.path}: its recorded sensor is not valid ({first_line(error)}); '
            + REWRITE
        ) from None


def choose_sensor(
    recorded: Sensor | None, given: SensorLike | None, where: str
) -> Sensor | None:
    """The sensor to normalise with: the one recorded, or the one given for files without.

    Args:
        recorded: the sensor the weights record, or None.
        given: ``--sensor`` (a shipped name, a YAML file, a dict, a Sensor), or None.
        where: the weights, for messages.

    Returns:
        The sensor, or None if neither says one.

    Raises:
        SceneError: for a *given* sensor that cannot be read, or that contradicts the
            recorded one.

    .. versionadded:: 0.2
    """
    if given is None:
        return recorded
    try:
        chosen = get_sensor(given)
    except (SensorError, OSError, TypeError) as error:
        raise SceneError(f'--sensor {short(given)}: {first_line(error)}') from None
    if recorded is not None and chosen.to_dict() != recorded.to_dict():
        raise SceneError(
            f'--sensor {short(given)}: contradicts the sensor {where} records '
            f'({_describe(recorded)}; given: {_describe(chosen)}); drop --sensor, which '
            'is for weights that record none'
        )
    return chosen


def check_sensor_bands(sensor: Sensor, count: int, where: str, hint: str = '') -> None:
    """Refuse a raster whose band count (after ``--bands``) is not the sensor's.

    Args:
        sensor: the sensor of the model's inputs.
        count: the bands read from the raster.
        where: the raster, e.g. ``'in.tif (--bands 1,2,3)'`` (:func:`raster_bands`).
        hint: more to do, ending the message.

    Raises:
        SceneError: naming both band counts and the ``--bands`` to pass.

    .. versionadded:: 0.2
    """
    n = sensor.num_bands
    if count == n:
        return
    example = ','.join(str(b) for b in range(1, n + 1))
    raise SceneError(
        f"{where} has {count} band(s), the model's sensor is {_describe(sensor)}; pass "
        f"--bands with the raster's numbers of those {n} bands in that order (e.g. "
        f'--bands {example}){hint}'
    )


def raster_bands(path: str, bands: Sequence[int], given: bool) -> str:
    """A raster and the bands chosen of it, for :func:`check_sensor_bands`.

    Args:
        path: the raster.
        bands: the 1-based bands read.
        given: whether ``--bands`` chose them.

    Returns:
        ``'in.tif'`` or ``'in.tif (--bands 4,3,2)'``.

    .. versionadded:: 0.2
    """
    return f'{path} (--bands {",".join(map(str, bands))})' if given else path


def _describe(sensor: Sensor) -> str:
    """``s2_l1c with 13 bands (B1, B2, ..., B12)``."""
    names = ', '.join(sensor.bands)
    return f'{sensor.name} with {sensor.num_bands} bands ({names})'


def _from_datamodule(
    ckpt: 'Checkpoint', trusted: Sequence[str]
) -> tuple[tuple[object, object], str]:
    from lightning.pytorch import LightningDataModule

    from .checkpoints import import_trusted

    path = ckpt.path
    hparams = ckpt.content.get('datamodule_hyper_parameters') or {}
    if not isinstance(hparams, Mapping):
        raise SceneError(
            f'{path}: its datamodule_hyper_parameters are a {type(hparams).__name__}, '
            f'not a dict; {_HINT}'
        )
    hparams = dict(hparams)
    if 'mean' in hparams and 'std' in hparams:  # e.g. GeoPileDataModule
        return (hparams['mean'], hparams['std']), 'datamodule hyper_parameters'
    class_path = hparams.pop('_class_path', None)
    config = None
    if not class_path:
        # datamodules without save_hyperparameters() (TorchGeo's, ours): `torchgeo fit`
        # records them only in the run's config.yaml
        found = _run_config(path, ckpt.hparams)
        if found is None:
            raise SceneError(
                f'{path}: does not record the normalisation it was trained with (no '
                'inference metadata, no datamodule in the checkpoint, and no config.yaml '
                f'of its `torchgeo fit` run in {Path(path).parent.parent} or '
                f"{Path(path).parent} with the checkpoint's model); {_HINT}"
            )
        config, class_path, hparams = found
    cls = import_trusted(config or path, class_path, trusted)
    if not (isinstance(cls, type) and issubclass(cls, LightningDataModule)):
        raise SceneError(
            f'{config or path}: datamodule {class_path} is not a LightningDataModule; '
            + _HINT
        )
    hparams = {k: v for k, v in hparams.items() if isinstance(k, str)}
    hparams.pop('_instantiator', None)
    try:
        # TorchGeo datamodules read no data in __init__
        datamodule: Any = cls(**hparams)
        stats = (datamodule.mean, datamodule.std)
    except Exception as error:  # noqa: BLE001  (a datamodule that needs more than its hparams)
        raise SceneError(
            f'{config or path}: the normalisation of its datamodule {class_path} cannot '
            f'be recovered ({type(error).__name__}: {first_line(error)}); {_HINT}'
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
        args = [data.get('init_args') or {}, data.get('dict_kwargs') or {}]
        if not all(isinstance(a, dict) for a in args):
            continue
        return str(candidate), data['class_path'], {**args[0], **args[1]}
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
    return bool(shared) and all(plain(args[k]) == plain(hparams[k]) for k in shared)
