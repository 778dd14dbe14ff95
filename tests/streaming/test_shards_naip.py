# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""``torchgeo-gfm shard --naip``: NAIP chips straight from the rasters into the shards."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from litdata import StreamingDataset

from torchgeo_gfm.cli import main
from torchgeo_gfm.datasets import GeoPileStreamingDataset

TILES = Path('tests', 'data', 'naip')
CHIPS = ['--naip-chips', '6', '--naip-size', '16', '--naip-seed', '3']


def _items(out: Path) -> list[dict[str, object]]:
    return list(StreamingDataset(str(out), shuffle=False))


def test_same_shards_as_cutting_chip_files_first(geopile: Path, tmp_path: Path) -> None:
    # one step: the GeoPile plus chips cut straight from the rasters
    direct = tmp_path / 'direct'
    args = ['shard', str(geopile), str(direct), '--naip', str(TILES), *CHIPS]
    assert main([*args, '--naip-source', 'aerial', '--chunk-bytes', '16kb']) == 0
    # two steps: naip-chips writes files into a copy of the GeoPile, then shard it
    root = tmp_path / 'pile'
    shutil.copytree(geopile, root)
    chips = ['-n', '6', '--size', '16', '--seed', '3', '--source', 'aerial']
    assert main(['naip-chips', str(TILES), '--out', str(root), *chips]) == 0
    (root / 'aerial' / 'chips.csv').unlink()  # the manifest is not an image
    two_step = tmp_path / 'two-step'
    assert main(['shard', str(root), str(two_step), '--chunk-bytes', '16kb']) == 0
    # the same samples, in the same order, in byte-identical chunks
    chunks = sorted(p.name for p in two_step.glob('chunk-*.bin'))
    assert chunks == sorted(p.name for p in direct.glob('chunk-*.bin'))
    for name in chunks:
        assert (direct / name).read_bytes() == (two_step / name).read_bytes()
    items = _items(direct)
    assert len(items) == 40 + 6
    aerial = [i for i in items if i['source_name'] == 'aerial']
    assert [i['path'] for i in aerial] == [
        f'aerial/chips_000/naip_{k:07d}.jpg' for k in range(6)
    ]
    for item in aerial:  # as GeoPile reads the chip files: source 0 of the sorted three
        written = root / str(item['path'])
        assert item['image'] == written.read_bytes()
        assert item['source'] == 0
        assert item['class'] == 'chips_000'


def test_naip_only_streams_from_s3(
    s3_server: str, cache_dir: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = 's3://geopile/naip-only'
    assert main(['shard', url, '--naip', str(TILES), *CHIPS]) == 0
    assert '6 of them NAIP chips' in capsys.readouterr().out
    dataset = GeoPileStreamingDataset(url, size=16, cache_dir=cache_dir, shuffle=False)
    samples = list(dataset)
    assert len(samples) == 6
    for sample in samples:
        assert sample['image'].dtype == torch.uint8
        assert sample['image'].shape == (3, 16, 16)
        assert sample['source'] == 0
    index = json.loads(Path(cache_dir).rglob('index.json').__next__().read_text())
    assert index['config']['data_format'][0] == 'bytes'


def test_ran_out_of_imagery(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # a 96 px grid of 32 px chips over two tiles holds far fewer than 500
    args = ['shard', str(tmp_path / 'out'), '--naip', str(TILES), '--naip-chips', '500']
    assert main([*args, '--naip-size', '32', '--naip-sampler', 'grid']) == 1
    captured = capsys.readouterr()
    assert 'only' in captured.err
    assert 'add tiles or lower --naip-chips' in captured.err
    assert len(_items(tmp_path / 'out')) < 500


@pytest.mark.parametrize(
    ('args', 'status', 'message'),
    [
        ([], 2, 'give a GeoPile ROOT, --naip tiles, or both'),
        (['--naip', str(TILES)], 2, '--naip and --naip-chips go together'),
        (['--naip-chips', '3'], 2, '--naip and --naip-chips go together'),
        (['--naip', 'missing.tif', '--naip-chips', '3'], 2, 'no such file'),
        (
            ['--naip', str(TILES), '--naip-chips', '3', '--naip-size', '500'],
            2,
            'size 500 px is larger than the imagery',
        ),
        (
            ['--naip', str(TILES), '--naip-chips', '3', '--naip-source', '../x'],
            2,
            'plain folder name',
        ),
    ],
)
def test_bad_naip_arguments(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    status: int,
    message: str,
) -> None:
    out = tmp_path / 'out'
    assert main(['shard', str(out), *args]) == status
    assert message in capsys.readouterr().err
    assert not out.exists()  # refused before anything was written


def test_naip_chips_must_be_positive(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ['shard', str(tmp_path / 'out'), '--naip', str(TILES), '--naip-chips', '0']
    with pytest.raises(SystemExit) as exit:  # argparse's own refusal
        main(args)
    assert exit.value.code == 2
    assert 'expected a positive integer' in capsys.readouterr().err


def test_naip_source_clashing_with_a_root_folder(
    geopile: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / 'out'
    args = ['shard', str(geopile), str(out), '--naip', str(TILES), *CHIPS]
    assert main(args) == 2  # geopile already has a 'naip' folder
    assert 'give the chips another name (--naip-source)' in capsys.readouterr().err
    assert not out.exists()
