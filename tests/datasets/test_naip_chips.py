# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

import csv
from pathlib import Path

import pytest
import torch
from torchgeo.datasets import DatasetNotFoundError

from torchgeo_gfm.cli import main
from torchgeo_gfm.datasets import GeoPile
from torchgeo_gfm.datasets.naip_chips import cut_naip_chips

TILES = Path('tests', 'data', 'naip')


def _rows(out: Path) -> list[list[str]]:
    with open(out / 'naip' / 'chips.csv') as f:
        return list(csv.reader(f))


@pytest.mark.parametrize('sampler', ['random', 'grid'])
def test_cut_into_geopile_layout(tmp_path: Path, sampler: str) -> None:
    written = cut_naip_chips(TILES, tmp_path, n=5, size=24, sampler=sampler, seed=1)
    assert written == 5
    files = sorted((tmp_path / 'naip' / 'chips_000').glob('*.jpg'))
    assert [f.name for f in files] == [f'naip_{i:07d}.jpg' for i in range(5)]
    rows = _rows(tmp_path)
    assert rows[0] == ['file', 'xmin', 'xmax', 'ymin', 'ymax', 'crs']
    assert len(rows) == 6
    assert rows[1][-1] == 'EPSG:26918'
    assert float(rows[1][2]) - float(rows[1][1]) == pytest.approx(24)
    pile = GeoPile(tmp_path)
    assert pile.counts == {'naip': 5}
    assert pile[0]['image'].shape == (3, 24, 24)
    assert pile[0]['image'].dtype == torch.uint8


def test_reproducible_from_seed(tmp_path: Path) -> None:
    for name, seed in (('a', 0), ('b', 0), ('c', 1)):
        cut_naip_chips(TILES, tmp_path / name, n=4, size=16, seed=seed)
    assert _rows(tmp_path / 'a') == _rows(tmp_path / 'b')
    assert _rows(tmp_path / 'a') != _rows(tmp_path / 'c')


def test_resolution_and_png(tmp_path: Path) -> None:
    cut_naip_chips(TILES, tmp_path, n=2, size=16, res=2.0, image_format='png')
    rows = _rows(tmp_path)
    assert rows[1][0].endswith('.png')
    assert float(rows[1][2]) - float(rows[1][1]) == pytest.approx(32)  # 16 px at 2 m


def test_cli_runs_out_of_imagery(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [
        'naip-chips',
        str(TILES),
        '--out',
        str(tmp_path),
        '-n',
        '500',
        '--size',
        '32',
    ]
    assert main([*args, '--sampler', 'grid', '--source', 'naip']) == 1
    captured = capsys.readouterr()
    assert 'only' in captured.err
    assert 'wrote' in captured.out


def test_cli_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ['naip-chips', str(TILES), '--out', str(tmp_path), '-n', '3', '--size', '16']
    assert main([*args, '--format', 'png', '--max-nodata', '0', '--seed', '2']) == 0
    assert 'wrote 3 NAIP chips' in capsys.readouterr().out


@pytest.mark.parametrize(
    'kwargs', [{'n': 0}, {'size': 0}, {'sampler': 'x'}, {'image_format': 'gif'}]
)
def test_bad_arguments(tmp_path: Path, kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {'n': 1, **kwargs}
    with pytest.raises(ValueError, match=r'must be|need'):
        cut_naip_chips(TILES, tmp_path, **args)  # type: ignore[arg-type]


def test_no_tiles(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError):
        cut_naip_chips(tmp_path, tmp_path / 'out', n=1)
