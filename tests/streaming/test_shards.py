# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""``torchgeo-gfm shard``: bytes as they are, bad files listed, reproducible shards."""

import shutil
from pathlib import Path

import pytest
from litdata import StreamingDataset

from torchgeo_gfm.cli import main
from torchgeo_gfm.datasets import GeoPile, write_geopile_shards


@pytest.fixture(scope='module')
def pile_with_bad_file(geopile: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp('bad') / 'geopile'
    shutil.copytree(geopile, root)
    (root / 'naip' / 'fields' / 'broken.jpg').write_bytes(b'\xff\xd8 not a jpeg')
    return root


def test_cli_shards_and_lists_bad_files(
    pile_with_bad_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / 'shards'
    assert (
        main(['shard', str(pile_with_bad_file), str(out), '--chunk-bytes', '16kb']) == 0
    )
    captured = capsys.readouterr()
    assert 'broken.jpg' in captured.err
    assert 'wrote 40 images of 2 sources (naip, resisc45)' in captured.out
    pile = GeoPile(pile_with_bad_file)
    files = {Path(f).relative_to(pile_with_bad_file).as_posix(): f for f in pile.files}
    items = list(StreamingDataset(str(out)))
    assert len(items) == 40
    assert len(list(out.glob('chunk-*.bin'))) > 1
    for item in items:  # the encoded file, not re-encoded, with source and class
        path = files[item['path']]
        assert item['image'] == Path(path).read_bytes()
        assert item['source_name'] == pile.sources[item['source']]
        assert item['class'] == Path(path).parent.name


def test_shards_are_reproducible(geopile: Path, tmp_path: Path) -> None:
    for run in ('a', 'b'):
        report = write_geopile_shards(geopile, str(tmp_path / run), chunk_bytes='16kb')
        assert report.written == 40
        assert not report.skipped
    chunks = sorted(p.name for p in (tmp_path / 'a').glob('chunk-*.bin'))
    for name in chunks:
        assert (tmp_path / 'a' / name).read_bytes() == (
            tmp_path / 'b' / name
        ).read_bytes()


def test_refuses_a_non_empty_output(geopile: Path, tmp_path: Path) -> None:
    (tmp_path / 'x.txt').write_text('keep me')
    with pytest.raises(FileExistsError, match='not an empty folder'):
        write_geopile_shards(geopile, str(tmp_path))
    assert main(['shard', str(geopile), str(tmp_path)]) == 1


@pytest.mark.parametrize('url', ['azure://container/geopile', 'hf://datasets/x/y'])
def test_refuses_an_output_litdata_cannot_write(
    geopile: Path, url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ValueError, match='uploads to s3:// and gs:// only'):
        write_geopile_shards(geopile, url)
    assert main(['shard', str(geopile), url]) == 1
    assert 'Write them to a local folder and upload it' in capsys.readouterr().err
