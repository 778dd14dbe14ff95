# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

import dataclasses
import math
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from hypothesis import given
from hypothesis import strategies as st
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torchvision.transforms import v2 as T

from torchgeo_gfm.sensors import DTYPES, Sensor, SensorError, get_sensor, list_sensors

SHIPPED = ['landsat_oli', 'naip', 'rgb', 's2_l1c', 's2_l2a']


def test_shipped_sensors() -> None:
    assert list_sensors() == SHIPPED
    for name in SHIPPED:
        sensor = get_sensor(name)
        assert sensor.name == name
        assert sensor.description
        assert len(sensor.mean) == len(sensor.std) == sensor.num_bands


def test_aliases() -> None:
    assert get_sensor('s2') is get_sensor('s2_l1c')
    assert get_sensor('landsat') is get_sensor('landsat_oli')


def test_design_facts() -> None:
    """Band names, counts and wavelengths as DESIGN.md section 5 states them."""
    l1c, l2a = get_sensor('s2_l1c'), get_sensor('s2_l2a')
    assert l1c.bands == (
        *('B1', 'B2', 'B3', 'B4', 'B5', 'B6', 'B7', 'B8', 'B8A', 'B9', 'B10'),
        *('B11', 'B12'),
    )
    assert l2a.bands == tuple(b for b in l1c.bands if b != 'B10')
    assert dict(zip(l1c.bands, l1c.wavelengths))['B10'] == 1375
    assert [l1c.bands[i] for i in l1c.rgb] == ['B4', 'B3', 'B2']
    assert [l2a.bands[i] for i in l2a.rgb] == ['B4', 'B3', 'B2']
    landsat = get_sensor('landsat_oli')
    assert landsat.wavelengths == (443, 482, 562, 655, 865, 1609, 2201)
    assert (landsat.scale, landsat.offset) == (2.75e-5, -0.2)
    assert get_sensor('naip').bands == ('R', 'G', 'B', 'NIR')
    assert get_sensor('naip').dtype == 'uint8'


def test_s2_l1c_is_torchgeos_ssl4eo_statistics() -> None:
    from torchgeo.models import (
        resnet,
    )  # the numbers TorchGeo normalises SSL4EO-S12 with

    sensor = get_sensor('s2_l1c')
    assert list(sensor.mean) == resnet._mean_s2
    assert list(sensor.std) == resnet._std_s2


def test_rgb_is_imagenet_normalisation() -> None:
    x = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)
    sensor = get_sensor('rgb')
    imagenet = T.Normalize(IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD)(x / 255)
    torch.testing.assert_close(sensor.normalize(x), imagenet)
    torch.testing.assert_close(sensor.true_colour(x), x / 255)


def test_normalize_per_band() -> None:
    sensor = get_sensor('s2_l2a')
    x = torch.rand(2, 12, 4, 4, dtype=torch.float64) * 5000
    mean = torch.tensor(sensor.mean, dtype=torch.float64)[:, None, None]
    std = torch.tensor(sensor.std, dtype=torch.float64)[:, None, None]
    out = sensor.normalize(x)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, (x - mean) / std)
    # one image [C, H, W] and integer input
    torch.testing.assert_close(
        sensor.normalize(x[0].to(torch.int32)),
        (x[0].int().float() - mean.float()) / std.float(),
    )


def test_true_colour_sentinel2() -> None:
    sensor = get_sensor('s2')
    x = torch.zeros(13, 2, 2, dtype=torch.int32)
    x[3], x[2], x[1] = 1500, 3000, 6000  # red, green, blue DN
    out = sensor.true_colour(x)
    assert out.shape == (3, 2, 2)
    assert out[:, 0, 0].tolist() == pytest.approx([0.5, 1.0, 1.0])


def test_true_colour_landsat_offset() -> None:
    sensor = get_sensor('landsat')
    x = torch.zeros(1, 7, 1, 1)
    x[0, 3] = 0.15 / 2.75e-5  # reflectance -0.05: black
    x[0, 2] = 0.35 / 2.75e-5  # 0.15: half of white
    x[0, 1] = 0.6 / 2.75e-5  # 0.4: clipped to white
    assert sensor.true_colour(x).flatten().tolist() == pytest.approx([0, 0.5, 1])


def test_wrong_band_count() -> None:
    with pytest.raises(SensorError, match=r'has 4 bands, sensor s2_l1c has 13 \(B1, '):
        get_sensor('s2').normalize(torch.zeros(1, 4, 2, 2))
    with pytest.raises(SensorError, match=r'scene\.tif has 3 bands, sensor naip has 4'):
        get_sensor('naip').check_bands(3, 'scene.tif')


@pytest.mark.parametrize('name', SHIPPED)
def test_dict_and_yaml_round_trip(name: str, tmp_path: Path) -> None:
    sensor = get_sensor(name)
    assert Sensor.from_dict(sensor.to_dict()) == sensor
    assert get_sensor(sensor.to_dict()) == sensor
    assert yaml.safe_load(yaml.safe_dump(sensor.to_dict())) == sensor.to_dict()
    path = tmp_path / 'sensor.yaml'
    sensor.to_yaml(path, header='line one\nline two')
    assert path.read_text().startswith('# line one\n# line two\nname: ')
    assert Sensor.from_yaml(path) == sensor == get_sensor(path) == get_sensor(str(path))


def test_get_sensor_unknown() -> None:
    with pytest.raises(SensorError) as e:
        get_sensor('sentinel2')
    message = str(e.value)
    assert "unknown sensor 'sentinel2'" in message
    assert all(name in message for name in SHIPPED)
    assert 's2 (s2_l1c)' in message
    assert 'YAML file' in message


def test_get_sensor_missing_yaml(tmp_path: Path) -> None:
    with pytest.raises(SensorError, match=r'mine\.yaml: cannot be read'):
        get_sensor(tmp_path / 'mine.yaml')


def test_bad_yaml(tmp_path: Path) -> None:
    path = tmp_path / 'bad.yaml'
    path.write_text('name: [unclosed\n')
    with pytest.raises(
        SensorError, match=r'bad\.yaml: cannot be read as a sensor YAML'
    ):
        Sensor.from_yaml(path)
    path.write_text('- a list\n')
    with pytest.raises(SensorError, match=r'bad\.yaml: is a list; write a mapping'):
        Sensor.from_yaml(path)


def test_yaml_exponent_without_dot(tmp_path: Path) -> None:
    """YAML 1.1 reads ``1e-4`` as text: the error says how to write it."""
    path = tmp_path / 's2.yaml'
    text = yaml.safe_dump(get_sensor('s2').to_dict()).replace('0.0001', '1e-4')
    path.write_text(text)
    with pytest.raises(SensorError, match=r"s2.yaml: scale is '1e-4'.*write 1\.0e-4"):
        Sensor.from_yaml(path)


def test_constructor_checks_and_converts() -> None:
    fields = get_sensor('rgb').to_dict()  # lists
    sensor = Sensor(**fields)
    assert isinstance(sensor.mean, tuple)
    assert sensor == get_sensor('rgb')
    with pytest.raises(SensorError, match=r"sensor 'rgb': std\[1\] is 0.0"):
        Sensor(**{**fields, 'std': [1, 0, 1]})
    with pytest.raises(dataclasses.FrozenInstanceError):
        sensor.name = 'other'  # type: ignore[misc]


# ---------------------------------------------------------------------------------------
# Bad dicts: each class of mistake names the field and what to write

BASE = get_sensor('s2_l2a').to_dict()


def _fails(d: Any, *needles: str) -> None:
    with pytest.raises(SensorError) as e:
        Sensor.from_dict(d, source='my.yaml')
    message = str(e.value)
    assert message.startswith('my.yaml: ')
    for needle in needles:
        assert needle in message, message
    assert '; ' in message  # what to do follows the problem


@given(st.sets(st.sampled_from([k for k in BASE if k != 'description']), min_size=1))
def test_missing_fields(missing: set[str]) -> None:
    _fails({k: v for k, v in BASE.items() if k not in missing}, 'missing', *missing)


@given(st.text(min_size=1).filter(lambda k: k not in BASE))
def test_extra_field(key: str) -> None:
    _fails({**BASE, key: 1}, 'unknown field', 'exactly the fields')


@given(
    st.sampled_from(['wavelengths', 'mean', 'std']),
    st.integers(0, 20).filter(lambda n: n != 12),
)
def test_length_differs_from_bands(field: str, n: int) -> None:
    _fails({**BASE, field: [1.0] * n}, field, f'has {n} values and bands has 12')


@given(
    st.one_of(
        st.lists(st.integers(0, 11), min_size=3, max_size=3).filter(
            lambda v: len(set(v)) < 3
        ),
        st.lists(st.integers(-50, 50), min_size=3, max_size=3).filter(
            lambda v: not all(0 <= i < 12 for i in v)
        ),
        st.lists(st.integers(0, 11), max_size=6).filter(lambda v: len(v) != 3),
        st.lists(st.floats(0, 11), min_size=3, max_size=3),
    )
)
def test_bad_rgb(rgb: list[Any]) -> None:
    _fails({**BASE, 'rgb': rgb}, 'rgb is', 'indices of the red, green and blue')


@given(
    st.integers(0, 11), st.floats(max_value=0, allow_nan=False, allow_infinity=False)
)
def test_std_not_positive(i: int, value: float) -> None:
    std = list(BASE['std'])
    std[i] = value
    _fails({**BASE, 'std': std}, f'std[{i}] is', '> 0')


@given(
    st.sampled_from(['mean', 'std', 'wavelengths', 'scale', 'offset', 'white']),
    st.sampled_from([math.nan, math.inf, -math.inf]),
)
def test_non_finite(field: str, value: float) -> None:
    d = {**BASE, field: value if field in ('scale', 'offset', 'white') else None}
    if d[field] is None:
        d[field] = [value, *BASE[field][1:]]
    _fails(d, field, 'write a finite number')


@given(st.one_of(st.text(), st.none(), st.integers()).filter(lambda t: t not in DTYPES))
def test_unknown_dtype(dtype: Any) -> None:
    _fails({**BASE, 'dtype': dtype}, 'dtype is', 'uint8, uint16, float32')


@given(st.sampled_from(['', '  ', None, 3]))
def test_empty_name(name: Any) -> None:
    _fails({**BASE, 'name': name}, 'name is', 'non-empty name')


@given(st.sampled_from([True, '1.5', None, [1.0]]))
def test_scale_not_a_number(scale: Any) -> None:
    _fails({**BASE, 'scale': scale}, 'scale is', 'not a number')


def test_bad_bands() -> None:
    _fails({**BASE, 'bands': []}, 'bands is []', 'band names')
    _fails({**BASE, 'bands': 'B1'}, 'bands is', 'band names')
    _fails({**BASE, 'bands': ['B1'] * 12}, 'repeats a name')
