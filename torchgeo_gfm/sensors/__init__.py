# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Sensors: what the bands of an image are and how to normalise and show them.

A :class:`Sensor` names the bands of the stored values (digital numbers, DN), their centre
wavelengths, the rule turning them into reflectance (``value * scale + offset``), the
per-band mean and standard deviation the model normalises with, and the bands that make a
true-colour picture for an RGB teacher. The shipped sensors are YAML files beside this
module (``rgb``, ``naip``, ``s2_l1c``, ``s2_l2a``, ``landsat_oli``); a YAML file of your
own, or the dict a checkpoint records, works the same way (:func:`get_sensor`).
``torchgeo-gfm stats`` writes one from your own GeoTIFFs (:mod:`torchgeo_gfm.sensors.stats`).

This module imports no torch: :meth:`Sensor.normalize` and :meth:`Sensor.true_colour`
work on the tensors they are given.

.. versionadded:: 0.2
"""

import dataclasses
import functools
import math
import os
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from ..outputs import atomic_output

if TYPE_CHECKING:
    from torch import Tensor

__all__ = ('ALIASES', 'DTYPES', 'Sensor', 'SensorError', 'get_sensor', 'list_sensors')

#: the stored value types a sensor may declare
DTYPES = ('uint8', 'uint16', 'float32')

#: other names of shipped sensors
ALIASES = {'s2': 's2_l1c', 'landsat': 'landsat_oli'}


class SensorError(ValueError):
    """A sensor that cannot be used; the message names where, which field and what to do.

    .. versionadded:: 0.2
    """


def _number(where: str, field: str, value: object) -> float:
    """A finite number (YAML ints and floats; not bools, not text)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        hint = ''
        if isinstance(value, str):  # YAML 1.1 reads 1e-4 (no dot) as text
            hint = ' (YAML reads 1e-4 as text: write 1.0e-4 or 0.0001)'
        raise SensorError(
            f'{where}: {field} is {value!r}, not a number{hint}; write a number'
        )
    if not math.isfinite(value):
        raise SensorError(f'{where}: {field} is {value}; write a finite number')
    return float(value)


def _numbers_per_band(
    where: str, field: str, value: object, bands: int
) -> tuple[float, ...]:
    """One finite number per band."""
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise SensorError(
            f'{where}: {field} is {value!r}; write a list of {bands} numbers, one per band'
        )
    if len(value) != bands:
        raise SensorError(
            f'{where}: {field} has {len(value)} values and bands has {bands}; write one '
            'value per band, in the order of bands'
        )
    return tuple(_number(where, f'{field}[{i}]', v) for i, v in enumerate(value))


def _positive(where: str, field: str, values: tuple[float, ...]) -> None:
    for i, v in enumerate(values):
        if v <= 0:
            name = field if len(values) == 1 else f'{field}[{i}]'
            raise SensorError(f'{where}: {name} is {v}; write a number > 0')


def _bands(where: str, value: object) -> tuple[str, ...]:
    if isinstance(value, str | bytes) or not isinstance(value, Sequence) or not value:
        raise SensorError(
            f'{where}: bands is {value!r}; write the list of band names in stored '
            'order, e.g. [B1, B2, B3]'
        )
    if not all(isinstance(b, str) and b for b in value):
        raise SensorError(f'{where}: bands {list(value)!r}: every name must be text')
    if len(set(value)) != len(value):
        raise SensorError(
            f'{where}: bands {list(value)!r} repeats a name; name each once'
        )
    return tuple(value)


def _rgb(where: str, value: object, bands: tuple[str, ...]) -> tuple[int, int, int]:
    fix = (
        f'write the 0-based indices of the red, green and blue bands in {list(bands)}, '
        'three different ones'
    )
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise SensorError(f'{where}: rgb is {value!r}; {fix}')
    ok = all(
        isinstance(i, int) and not isinstance(i, bool) and 0 <= i < len(bands)
        for i in value
    )
    if len(value) != 3 or not ok or len(set(value)) != 3:
        raise SensorError(f'{where}: rgb is {list(value)!r}; {fix}')
    return (value[0], value[1], value[2])


def _clean(fields: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The fields of a :class:`Sensor`, checked and converted to tuples and floats."""
    name, dtype, description = fields['name'], fields['dtype'], fields['description']
    if not isinstance(name, str) or not name.strip():
        raise SensorError(f'{where}: name is {name!r}; write a non-empty name')
    where = where or f'sensor {name!r}'
    if dtype not in DTYPES:
        raise SensorError(
            f'{where}: dtype is {dtype!r}; write the type of the stored values, one of '
            f'{", ".join(DTYPES)}'
        )
    if not isinstance(description, str):
        raise SensorError(f'{where}: description is {description!r}; write text')
    bands = _bands(where, fields['bands'])
    n = len(bands)
    out: dict[str, Any] = {'name': name, 'bands': bands}
    for field in ('wavelengths', 'mean', 'std'):
        out[field] = _numbers_per_band(where, field, fields[field], n)
    for field in ('scale', 'offset', 'white'):
        out[field] = _number(where, field, fields[field])
    for field in ('wavelengths', 'std'):
        _positive(where, field, out[field])
    for field in ('scale', 'white'):
        _positive(where, field, (out[field],))
    out['rgb'] = _rgb(where, fields['rgb'], bands)
    return {**out, 'dtype': dtype, 'description': description}


@dataclasses.dataclass(frozen=True)
class Sensor:
    """The bands of an image, their statistics and their true colour.

    Reflectance is ``value * scale + offset``; the true-colour picture is that
    reflectance of the ``rgb`` bands divided by ``white`` and clipped to ``[0, 1]``.
    Constructing one checks every field (:class:`SensorError`); lists become tuples.

    .. versionadded:: 0.2
    """

    #: short name, e.g. ``s2_l1c``
    name: str
    #: band names in stored order, e.g. ``('B1', 'B2', ..., 'B12')``
    bands: tuple[str, ...]
    #: centre wavelength of each band, in nm
    wavelengths: tuple[float, ...]
    #: 0-based indices of the red, green and blue bands in :attr:`bands`
    rgb: tuple[int, int, int]
    #: reflectance = value * scale + offset
    scale: float
    #: reflectance = value * scale + offset
    offset: float
    #: reflectance shown as white in true colour (0.3 for Sentinel-2 and Landsat, 1 for
    #: 8-bit RGB and NAIP)
    white: float
    #: mean of the stored values, per band
    mean: tuple[float, ...]
    #: standard deviation of the stored values, per band
    std: tuple[float, ...]
    #: how the values are stored, ``'uint8'``, ``'uint16'`` or ``'float32'``
    dtype: str
    #: where the numbers come from
    description: str = ''

    def __post_init__(self) -> None:
        """Check every field; store sequences as tuples of floats (ints for rgb)."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for key, value in _clean(fields, '').items():
            object.__setattr__(self, key, value)  # frozen: only here

    @property
    def num_bands(self) -> int:
        """Number of bands."""
        return len(self.bands)

    def check_bands(self, count: int, where: str) -> None:
        """Refuse data with another number of bands than this sensor's.

        Args:
            count: number of bands of the data.
            where: what holds the data (a file name, ``'the batch'``), named in the error.

        Raises:
            SensorError: naming *where*, both band counts and what to do.
        """
        if count != self.num_bands:
            raise SensorError(
                f'{where} has {count} band{"s" * (count != 1)}, sensor {self.name} has '
                f'{self.num_bands} ({", ".join(self.bands)}); give data of this sensor, '
                f'or a sensor of {count} bands (a shipped name: '
                f'{", ".join(list_sensors())}, or a YAML file)'
            )

    def _as_column(self, values: tuple[float, ...], x: 'Tensor') -> 'Tensor':
        """*values* as a ``[C, 1, 1]`` tensor of *x*'s float type and device."""
        dtype = x.dtype if x.is_floating_point() else None
        return x.new_tensor(values, dtype=dtype).view(-1, 1, 1)

    def normalize(self, x: 'Tensor') -> 'Tensor':
        """``(x - mean) / std`` per band.

        Args:
            x: stored values ``[..., C, H, W]`` (any numeric type).

        Returns:
            Float tensor of the same shape (float32 for integer input).

        Raises:
            SensorError: if ``C`` is not the number of bands.
        """
        self.check_bands(x.shape[-3], f'a tensor of shape {tuple(x.shape)}')
        x = x if x.is_floating_point() else x.float()
        return (x - self._as_column(self.mean, x)) / self._as_column(self.std, x)

    def true_colour(self, x: 'Tensor') -> 'Tensor':
        """True colour in ``[0, 1]``: ``clip((x[rgb] * scale + offset) / white, 0, 1)``.

        Args:
            x: stored values ``[..., C, H, W]`` (any numeric type).

        Returns:
            Float tensor ``[..., 3, H, W]`` (red, green, blue).

        Raises:
            SensorError: if ``C`` is not the number of bands.
        """
        self.check_bands(x.shape[-3], f'a tensor of shape {tuple(x.shape)}')
        rgb = x[..., list(self.rgb), :, :]
        rgb = rgb if rgb.is_floating_point() else rgb.float()
        return ((rgb * self.scale + self.offset) / self.white).clamp(0, 1)

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain YAML/JSON types (lists, floats, text).

        Returns:
            What :meth:`from_dict` reads back.
        """
        return {
            f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
            for f in dataclasses.fields(self)
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = '') -> 'Sensor':
        """Read a sensor from its fields, checking them.

        Args:
            d: the fields, as :meth:`to_dict` writes them (``description`` optional).
            source: where *d* comes from (a file), named in errors.

        Returns:
            The sensor.

        Raises:
            SensorError: naming *source*, the missing, unknown or bad field, and what
                to write.
        """
        where = source or 'the sensor'
        if not isinstance(d, Mapping):
            raise SensorError(
                f'{where}: is a {type(d).__name__}; write a mapping of the fields '
                f'{", ".join(_FIELDS)}'
            )
        missing = [f for f in _FIELDS if f not in d and f != 'description']
        extra = [str(k) for k in d if k not in _FIELDS]
        if missing or extra:
            raise SensorError(
                where
                + (f': missing {", ".join(missing)}' if missing else '')
                + (f': unknown field {", ".join(extra)}' if extra else '')
                + f'; a sensor has exactly the fields {", ".join(_FIELDS)} '
                '(description optional)'
            )
        return cls(**_clean({'description': '', **d}, source))

    def to_yaml(self, path: str | os.PathLike[str], header: str = '') -> None:
        """Write the sensor as YAML (atomically: a temporary file, then a rename).

        Args:
            path: the file to write (replaced if it exists; check it first with
                :func:`torchgeo_gfm.outputs.check_output`).
            header: comment lines written above the fields (without ``#``).
        """
        comment = ''.join(f'# {line}'.rstrip() + '\n' for line in header.splitlines())
        text = yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None)
        with atomic_output(path) as tmp:
            Path(tmp).write_text(comment + text, encoding='utf-8')

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str]) -> 'Sensor':
        """Read a sensor from a YAML file, checking it.

        Args:
            path: the file.

        Returns:
            The sensor.

        Raises:
            SensorError: if the file cannot be read, is not YAML or a field is wrong.
        """
        try:
            d = yaml.safe_load(Path(path).read_text(encoding='utf-8'))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
            raise SensorError(
                f'{os.fspath(path)}: cannot be read as a sensor YAML file '
                f'({" ".join(str(e).split())}); give a readable YAML file'
            ) from e
        return cls.from_dict(d, source=os.fspath(path))


_FIELDS = tuple(f.name for f in dataclasses.fields(Sensor))


def list_sensors() -> list[str]:
    """Names of the shipped sensors (aliases not included).

    Returns:
        Sorted names, each a YAML file beside this module.

    .. versionadded:: 0.2
    """
    return sorted(
        p.name.removesuffix('.yaml')
        for p in resources.files(__name__).iterdir()
        if p.name.endswith('.yaml')
    )


@functools.cache
def _shipped(name: str) -> Sensor:
    path = resources.files(__name__) / f'{name}.yaml'
    with resources.as_file(path) as file:
        return Sensor.from_yaml(file)


def get_sensor(sensor: str | os.PathLike[str] | Mapping[str, Any] | Sensor) -> Sensor:
    """The sensor a name, a YAML file, a dict or a sensor stands for.

    Args:
        sensor: a shipped name (:func:`list_sensors`; ``'s2'`` is ``'s2_l1c'``,
            ``'landsat'`` is ``'landsat_oli'``), the path of a sensor YAML file, the dict
            of :meth:`Sensor.to_dict` (as a checkpoint records it) or a :class:`Sensor`.

    Returns:
        The sensor.

    Raises:
        SensorError: for an unknown name (listing the shipped ones) or a bad file/dict.

    .. versionadded:: 0.2
    """
    if isinstance(sensor, Sensor):
        return sensor
    if isinstance(sensor, Mapping):
        return Sensor.from_dict(sensor, source='the sensor dict')
    text = os.fspath(sensor)
    name = ALIASES.get(text, text)
    if name in list_sensors():
        return _shipped(name)
    if os.path.exists(text) or text.endswith(('.yaml', '.yml')):
        return Sensor.from_yaml(text)
    aliases = ', '.join(f'{a} ({n})' for a, n in ALIASES.items())
    raise SensorError(
        f'unknown sensor {text!r}: give a shipped name ({", ".join(list_sensors())}; '
        f'aliases {aliases}) or the path of a sensor YAML file '
        '(torchgeo-gfm stats writes one from your GeoTIFFs)'
    )
