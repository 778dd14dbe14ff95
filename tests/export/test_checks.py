# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""The checks both formats share: the kind expected, the sensor, the graph against its
metadata (a file edited after export)."""

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.export.exported_files import (
    Made,
    edit_pt2,
    set_onnx_metadata,
    tiny,
    tiny_files,
)
from torchgeo_gfm.export import load_exported
from torchgeo_gfm.export.checks import check_expect, check_sensor
from torchgeo_gfm.export.metadata import EXTRA_FILE, ExportError, ExportMetadata
from torchgeo_gfm.sensors import get_sensor


@pytest.fixture(scope='module')
def make(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Made]:
    return tiny_files(tmp_path_factory)


@pytest.mark.parametrize('suffix', ['.onnx', '.pt2'])
def test_expect(make: Callable[..., Made], suffix: str) -> None:
    _, _, backbone = make('backbone', suffix)
    _, _, task = make('classification', suffix)
    with pytest.raises(
        ExportError, match='use embed --weights, or export the fine-tuned'
    ):
        load_exported(backbone, expect='task')
    with pytest.raises(ExportError, match='is an exported classification task'):
        load_exported(task, expect='backbone')
    assert load_exported(task, expect='task').kind == 'classification'


def test_expect_other() -> None:
    meta = tiny()[1]
    check_expect(meta, None, 'm.onnx')
    check_expect(meta, 'task', 'm.onnx')
    with pytest.raises(ExportError, match="expect='features': expected 'task'"):
        check_expect(meta, 'features', 'm.onnx')


def test_check_sensor() -> None:
    meta = tiny()[1]
    assert check_sensor(meta, 'm.onnx') is None
    rgb = get_sensor('rgb')
    assert check_sensor(dataclasses.replace(meta, sensor=rgb.to_dict()), 'm') == rgb
    four = dataclasses.replace(
        meta, sensor=rgb.to_dict(), in_channels=4, mean=[0.0] * 4, std=[1.0] * 4
    )
    with pytest.raises(
        ExportError, match=r'm\.onnx: its metadata sensor rgb has 3 bands'
    ):
        check_sensor(four, 'm.onnx')
    with pytest.raises(ExportError, match='its metadata sensor is not valid'):
        check_sensor(dataclasses.replace(meta, sensor={'name': 'x'}), 'm.onnx')


def _metadata(meta: ExportMetadata, **changes: Any) -> str:
    return dataclasses.replace(meta, **changes).to_json()


DISAGREE: dict[str, tuple[dict[str, Any], str]] = {
    'names': ({'inputs': ['x']}, 'takes inputs'),
    'tile': (
        {'tile': 32},
        r'input image is \[.*16, 16\], its metadata says \[.*32, 32\]',
    ),
    'channels': (
        {'channels': 3, 'classes': ['a', 'b', 'c']},
        'output probabilities is',
    ),
    'in_channels': (
        {'in_channels': 4, 'mean': [0.0] * 4, 'std': [1.0] * 4},
        'input image is',
    ),
    'batch': (
        {'batch': 4},
        'input image takes batches of any size, its metadata says 4',
    ),
    'outputs': ({'outputs': ['probabilities', 'x']}, 'gives outputs'),
}


# a .pt2 graph's inputs are checked by count and shape: torch.export names them after forward
@pytest.mark.parametrize(
    ('case', 'suffix'),
    [
        (c, s)
        for c in DISAGREE
        for s in ('.onnx', '.pt2')
        if (c, s) != ('names', '.pt2')
    ],
)
def test_graph_disagrees(
    make: Callable[..., Made], tmp_path: Path, case: str, suffix: str
) -> None:
    changes, message = DISAGREE[case]
    _, meta, path = make(suffix=suffix)
    text = _metadata(meta, **changes)
    out = tmp_path / f'edited{suffix}'
    if suffix == '.onnx':
        set_onnx_metadata(path, out, text)
    else:
        edit_pt2(path, out, lambda e: e.update({f'extra/{EXTRA_FILE}': text.encode()}))
    if suffix == '.pt2':  # unnamed
        message = message.replace('input image', 'input')
    with pytest.raises(ExportError, match=f'its graph {message}.*export it again'):
        load_exported(out)


def test_fixed_batch_disagrees(make: Callable[..., Made], tmp_path: Path) -> None:
    _, meta, path = make(batch=2)
    out = set_onnx_metadata(path, tmp_path / 'any.onnx', _metadata(meta, batch=None))
    with pytest.raises(ExportError, match='takes batches of 2, its metadata says any'):
        load_exported(out)
