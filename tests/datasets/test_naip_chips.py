# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

import csv
import math
import os
import re
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import from_origin

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
    'kwargs',
    [
        {'n': 0},
        {'n': 2.5},
        {'size': 0},
        {'size': -3},
        {'sampler': 'x'},
        {'seed': -1},
        {'res': 0.0},
        {'res': -1.0},
        {'res': math.nan},
        {'res': math.inf},
        {'image_format': 'gif'},
        {'max_nodata': 1.5},
        {'max_nodata': math.nan},
    ],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {'n': 1, **kwargs}
    (name, value), *_ = kwargs.items()
    with pytest.raises(
        ValueError, match=rf'^{name}={re.escape(repr(value))}: expected '
    ):
        cut_naip_chips(TILES, tmp_path / 'out', **args)  # type: ignore[arg-type]
    assert not (tmp_path / 'out').exists()


@pytest.mark.parametrize('source', ['', '.', '..', '../../x', 'a/b', '/abs', '.hidden'])
def test_unsafe_source(tmp_path: Path, source: str) -> None:
    with pytest.raises(ValueError, match='source must be a plain folder name'):
        cut_naip_chips(TILES, tmp_path / 'a' / 'out', n=1, source=source)
    assert list(tmp_path.iterdir()) == []


def test_no_tiles(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r'no NAIP GeoTIFF \(m_\*\.tif\) found'):
        cut_naip_chips(tmp_path, tmp_path / 'out', n=1)
    with pytest.raises(
        FileNotFoundError, match=r'missing\.tif: no such file or folder'
    ):
        cut_naip_chips([TILES, tmp_path / 'missing.tif'], tmp_path / 'out', n=1)
    assert list(tmp_path.iterdir()) == []


def _cli(out: Path, *extra: str, paths: tuple[str, ...] = (str(TILES),)) -> list[str]:
    return ['naip-chips', *paths, '--out', str(out), '-n', '2', '--size', '16', *extra]


def _tree(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in root.rglob('*') if p.is_file()}


@pytest.mark.parametrize(
    ('option', 'value', 'expected'),
    [
        ('-n', '-5', 'a positive integer'),
        ('-n', '0', 'a positive integer'),
        ('-n', 'two', 'a positive integer'),
        ('--size', '0', 'a positive integer'),
        ('--size', '-1', 'a positive integer'),
        ('--res', '0', 'a positive number'),
        ('--res', '-2.5', 'a positive number'),
        ('--res', 'nan', 'a positive number'),
        ('--res', 'inf', 'a positive number'),
        ('--seed', '-1', 'a non-negative integer'),
        ('--max-nodata', '2', 'a fraction in [0, 1]'),
        ('--max-nodata', 'nan', 'a fraction in [0, 1]'),
    ],
)
def test_cli_refuses_bad_numbers(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    option: str,
    value: str,
    expected: str,
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*_cli(tmp_path / 'out'), option, value])
    assert exit_info.value.code == 2
    out, err = capsys.readouterr()
    assert out == ''
    assert option in err
    assert f': expected {expected}, got {value!r}\n' in err
    assert list(tmp_path.iterdir()) == []


ZERO_TILE = 'm_3807511_se_18_060_20181104.tif'


def _zero_tile(folder: Path, bands: int = 4) -> None:
    """A real, all-empty NAIP-named GeoTIFF (UTM 18N, 1 m)."""
    folder.mkdir()
    profile = {
        'driver': 'GTiff',
        'dtype': 'uint8',
        'count': bands,
        'height': 32,
        'width': 32,
        'crs': 'EPSG:26918',
        'transform': from_origin(300_000, 4_300_000, 1, 1),
    }
    with rasterio.open(folder / ZERO_TILE, 'w', **profile) as f:
        f.write(np.zeros((bands, 32, 32), np.uint8))


# case -> (argv after setup, text stderr must hold); {p} is tmp_path
BAD_INPUTS: dict[str, tuple[list[str], str]] = {
    'missing path': (
        _cli(Path('{p}/out'), paths=(str(TILES), '{p}/missing')),
        '{p}/missing: no such file or folder',
    ),
    'no tiles': (_cli(Path('{p}/out'), paths=('{p}/empty',)), 'no NAIP GeoTIFF'),
    'one-band tile': (
        _cli(Path('{p}/out'), paths=(str(TILES), '{p}/gray')),
        f'{{p}}/gray/{ZERO_TILE} has 1 band(s); expected a NAIP GeoTIFF with RGB',
    ),
    'out is a file': (_cli(Path('{p}/file')), 'out {p}/file is a file'),
    'traversal': (
        _cli(Path('{p}/a/out'), '--source', '../../x'),
        (
            "source must be a plain folder name (no path separator, no leading '.'), "
            "got '../../x'"
        ),
    ),
    'absolute source': (_cli(Path('{p}/out'), '--source', '{p}/x'), "got '{p}/x'"),
    'empty source': (_cli(Path('{p}/out'), '--source', ''), "got ''"),
    'existing output': (
        _cli(Path('{p}'), '--source', 'full'),
        '{p}/full: is a folder that is not empty; choose a new or empty folder',
    ),
    'output is a file': (
        _cli(Path('{p}'), '--source', 'file'),
        '{p}/file: is a file; expected a new or empty folder',
    ),
    'chip too large': (
        [*_cli(Path('{p}/out')), '--size', '1000'],
        'size 1000 px is larger than the imagery',
    ),
    'chip far too large': (
        [*_cli(Path('{p}/out')), '--size', '10000000'],
        'lower size (--size) or res, or add tiles',
    ),
    'empty imagery': (
        _cli(Path('{p}/out'), paths=('{p}/zero',)),
        'the tiles are smaller than a chip or mostly empty',
    ),
}


@pytest.mark.parametrize('case', BAD_INPUTS)
def test_cli_refuses_bad_input(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv, expected = BAD_INPUTS[case]
    (tmp_path / 'empty').mkdir()
    (tmp_path / 'file').write_text('not a folder')
    (tmp_path / 'full').mkdir()
    (tmp_path / 'full' / 'naip_0000000.jpg').write_text('an earlier chip')
    _zero_tile(tmp_path / 'zero')
    _zero_tile(tmp_path / 'gray', bands=1)
    before = _tree(tmp_path)
    assert main([a.format(p=tmp_path) for a in argv]) == 2
    out, err = capsys.readouterr()
    assert out == ''
    assert err.startswith('torchgeo-gfm naip-chips: error: ')
    assert expected.format(p=tmp_path) in err
    assert err.count('\n') == 1  # one paragraph, no traceback
    assert _tree(tmp_path) == before  # nothing written, nothing changed
    assert {p.name for p in tmp_path.iterdir()} == {
        'empty',
        'file',
        'full',
        'gray',
        'zero',
    }


@pytest.mark.parametrize('error', [KeyboardInterrupt, OSError])
def test_interrupted_run_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: type[BaseException]
) -> None:
    write = Path.write_bytes
    calls = []

    def write_then_fail(path: Path, data: bytes) -> int:
        calls.append(path)
        if len(calls) == 3:
            write(path, data[: len(data) // 2])  # half a chip
            raise error('disk full')
        return write(path, data)

    monkeypatch.setattr(Path, 'write_bytes', write_then_fail)
    (tmp_path / 'naip').mkdir()  # an empty folder is filled, not refused
    with pytest.raises(error, match='disk full'):
        cut_naip_chips(TILES, tmp_path, n=5, size=16)
    assert len(calls) == 3
    assert list(tmp_path.rglob('*')) == [tmp_path / 'naip']


def test_rerun_is_refused_and_reproducible(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_cli(tmp_path / 'a')) == 0
    first = _tree(tmp_path / 'a')
    assert main(_cli(tmp_path / 'a', '-n', '1')) == 2
    assert 'is a folder that is not empty' in capsys.readouterr().err
    assert _tree(tmp_path / 'a') == first
    assert main(_cli(tmp_path / 'b')) == 0
    second = {
        p.relative_to(tmp_path / 'b'): v for p, v in _tree(tmp_path / 'b').items()
    }
    assert second == {p.relative_to(tmp_path / 'a'): v for p, v in first.items()}


def test_any_number_of_chips_fits_in_memory() -> None:
    # 10^8 locations drawn at once took 24 GB; in rounds the first few come at once
    import itertools
    import resource

    from torchgeo_gfm.datasets.naip_chips import LOCATIONS_PER_ROUND, NAIPChipSpec

    spec = NAIPChipSpec((str(TILES),), n=10**8, size=16)
    dataset = spec.open()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    chips = list(itertools.islice(spec.encoded(dataset), 3))
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert len(chips) == 3
    assert grown_kib < 200 * 1024 * LOCATIONS_PER_ROUND // 10_000


def test_rounds_keep_small_runs_and_stay_reproducible(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from torchgeo_gfm.datasets import naip_chips

    cut_naip_chips(TILES, tmp_path / 'a', n=6, size=16, seed=3)
    monkeypatch.setattr(naip_chips, 'LOCATIONS_PER_ROUND', 2)  # three rounds
    cut_naip_chips(TILES, tmp_path / 'b', n=6, size=16, seed=3)
    cut_naip_chips(TILES, tmp_path / 'c', n=6, size=16, seed=3)
    assert len(_rows(tmp_path / 'b')) == 7
    assert _rows(tmp_path / 'b') == _rows(tmp_path / 'c')
    assert len({tuple(r) for r in _rows(tmp_path / 'b')}) == 7  # six distinct chips


@pytest.mark.parametrize('umask', [0o022, 0o077])
def test_chips_folder_has_the_umask_mode(umask: int, tmp_path: Path) -> None:
    old = os.umask(umask)
    try:
        cut_naip_chips(TILES, tmp_path, n=1, size=16)
    finally:
        os.umask(old)
    assert (tmp_path / 'naip').stat().st_mode & 0o777 == 0o777 & ~umask
    assert [p.name for p in tmp_path.iterdir()] == ['naip']


@pytest.mark.parametrize(
    'out', ['', ' ', 's3://bucket/geopile', 'S3:geopile', 'ftp://h/x']
)
def test_empty_or_url_like_out_is_refused(
    out: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Never written as the current folder or a local folder named after the scheme."""
    monkeypatch.chdir(tmp_path)
    tiles = str(TILES.absolute())
    assert main(['naip-chips', tiles, '--out', out, '-n', '1', '--size', '16']) == 2
    err = capsys.readouterr().err
    assert err.startswith('torchgeo-gfm naip-chips: error: ')
    assert err.count('\n') == 1
    assert list(tmp_path.iterdir()) == []
