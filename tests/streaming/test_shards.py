# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""``torchgeo-gfm shard``: bytes as they are, bad files listed, reproducible shards."""

import os
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litdata import StreamingDataset

from torchgeo_gfm.cli import main
from torchgeo_gfm.datasets import GeoPile, write_geopile_shards
from torchgeo_gfm.datasets.shards import parse_chunk_bytes
from torchgeo_gfm.outputs import OutputError


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
    with pytest.raises(OutputError, match='is a folder that is not empty'):
        write_geopile_shards(geopile, str(tmp_path))
    assert main(['shard', str(geopile), str(tmp_path)]) == 2
    assert [p.name for p in tmp_path.iterdir()] == ['x.txt']


@pytest.mark.parametrize('url', ['azure://container/geopile', 'hf://datasets/x/y'])
def test_refuses_an_output_litdata_cannot_write(
    geopile: Path, url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ValueError, match='uploads to s3:// and gs:// only'):
        write_geopile_shards(geopile, url)
    assert main(['shard', str(geopile), url]) == 2
    assert 'Write them to a local folder and upload it' in capsys.readouterr().err


SCHEMES = st.from_regex(r'[A-Za-z][A-Za-z0-9+.-]{0,8}', fullmatch=True)
REST = st.text(st.characters(codec='ascii', exclude_characters='\0'), max_size=20)
FUNCTION = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def _refused_as_url(geopile: Path, out: str) -> None:
    with pytest.raises(OutputError, match='cannot write shards to'):
        write_geopile_shards(geopile, out)


@given(scheme=SCHEMES, rest=REST)
@FUNCTION
def test_url_of_a_scheme_it_cannot_write_is_refused(
    geopile: Path,
    scheme: str,
    rest: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = f'{scheme}://{rest}'
    if url.startswith(('s3://', 'gs://')):
        return  # writable (checked against the server in test_errors.py)
    monkeypatch.chdir(tmp_path)
    _refused_as_url(geopile, url)
    assert list(tmp_path.iterdir()) == []  # never written as a local folder


@pytest.mark.parametrize(
    'out',
    [
        'ftp://host/x',
        'http://host/x',
        'https://host/x',
        'S3://bucket/x',
        'Gs://bucket/x',
        's3:/bucket',
        's3:bucket',
        's3//x',
        'sss://bucket',
        'file:///tmp/x',
        'abfss:/x',
    ],
)
def test_malformed_urls_are_refused(
    geopile: Path,
    out: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    _refused_as_url(geopile, out)
    assert main(['shard', str(geopile), out]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f'torchgeo-gfm shard: error: cannot write shards to {out!r}')
    assert err.count('\n') == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ('text', 'size'),
    [
        ('67108864', 67108864),
        ('64MB', 64_000_000),
        ('16kb', 16_000),
        (' 2GB', 2_000_000_000),
    ],
)
def test_chunk_bytes(text: str, size: int) -> None:
    assert parse_chunk_bytes(text) == size
    assert parse_chunk_bytes(size) == size


def test_chunk_bytes_as_an_integer_on_the_command_line(
    geopile: Path, tmp_path: Path
) -> None:
    for run, value in (('a', '16000'), ('b', '16kb')):
        out = tmp_path / run
        assert main(['shard', str(geopile), str(out), '--chunk-bytes', value]) == 0
    chunks = sorted(p.name for p in (tmp_path / 'a').glob('chunk-*.bin'))
    assert len(chunks) > 1
    assert chunks == sorted(p.name for p in (tmp_path / 'b').glob('chunk-*.bin'))


@pytest.mark.parametrize('value', ['0', '-1', 'abc', '-1MB', 'infMB', 'nanGB', ''])
def test_bad_chunk_bytes_refused(
    value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ValueError, match='expected a positive size in bytes'):
        parse_chunk_bytes(value)
    with pytest.raises(SystemExit) as exit_info:
        main(['shard', str(tmp_path), str(tmp_path / 'out'), f'--chunk-bytes={value}'])
    assert exit_info.value.code == 2
    assert 'argument --chunk-bytes: chunk_bytes' in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_all_bad_root_leaves_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / 'root'
    for source in ('a', 'b'):
        (root / source / 'class').mkdir(parents=True)
        (root / source / 'class' / 'x.jpg').write_bytes(b'\xff\xd8 not a jpeg')
    out = tmp_path / 'new' / 'shards'
    assert main(['shard', str(root), str(out)]) == 2
    assert 'could be decoded' in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ['root']  # no OUT, no partial, no parent
    (tmp_path / 'empty').mkdir()
    with pytest.raises(RuntimeError, match='nothing was written'):
        write_geopile_shards(root, str(tmp_path / 'empty'))
    assert os.listdir(tmp_path / 'empty') == []
    assert sorted(os.listdir(tmp_path)) == ['empty', 'root']
