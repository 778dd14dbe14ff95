# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""``torchgeo-gfm shard``: bytes as they are, bad files listed, reproducible shards."""

import os
import shutil
import signal
import subprocess
import sys
import time
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


def _one_line_refusal(
    argv: list[str], match: str, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    try:
        status = main(['shard', *argv])
    except SystemExit as exit_info:  # argparse's own refusal
        status = exit_info.code  # type: ignore[assignment]
    assert status == 2
    err = capsys.readouterr().err
    lines = [
        line
        for line in err.splitlines()
        if line.startswith('torchgeo-gfm shard: error: ')
    ]
    assert len(lines) == 1, err
    assert match in lines[0]
    assert 'Traceback' not in err


@pytest.fixture(scope='module')
def jpeg(geopile: Path) -> bytes:
    return next(geopile.rglob('*.jpg')).read_bytes()


# file names of every kind: tabs, newlines, spaces, non-Latin, bytes that are not UTF-8
FILE_NAMES = st.binary(min_size=1, max_size=30).filter(
    lambda b: b'/' not in b and b'\0' not in b and not b.startswith(b'.')
)


@given(good=FILE_NAMES, bad=FILE_NAMES, folder=FILE_NAMES)
@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@pytest.mark.slow
def test_any_file_name_is_sharded_or_listed(
    good: bytes,
    bad: bytes,
    folder: bytes,
    jpeg: bytes,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    if good == bad:
        return
    tmp = tmp_path_factory.mktemp('names')
    cls = os.path.join(os.fsencode(tmp), b'root', b'src', folder)
    os.makedirs(cls)
    with open(os.path.join(cls, good + b'.jpg'), 'wb') as f:
        f.write(jpeg)
    with open(os.path.join(cls, bad + b'.jpg'), 'wb') as f:
        f.write(b'not a jpeg')
    report = write_geopile_shards(tmp / 'root', str(tmp / 'out'))
    assert report.written == 1
    assert [os.fsencode(p) for p, _ in report.skipped] == [
        os.path.join(cls, bad + b'.jpg')
    ]
    (item,) = list(StreamingDataset(str(tmp / 'out')))
    assert item['image'] == jpeg
    assert item['path'].endswith(good.decode('utf-8', 'backslashreplace') + '.jpg')


def test_fifos_and_devices_posing_as_images_are_skipped_unread(
    geopile: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / 'root'
    shutil.copytree(geopile / 'naip', root / 'naip')
    cls = root / 'naip' / 'fields'
    os.mkfifo(cls / 'fifo.jpg')  # reading it would wait for a writer forever
    (cls / 'zero.png').symlink_to('/dev/zero')  # reading it would fill memory
    assert main(['shard', str(root), str(tmp_path / 'out')]) == 0
    captured = capsys.readouterr()
    assert 'fifo.jpg (OSError: not a regular file' in captured.err
    assert 'zero.png (OSError: not a regular file' in captured.err
    assert 'wrote 20 images' in captured.out


@pytest.mark.parametrize(
    'inside', ['.', 'naip', 'naip/fields/new', 'new/deeper', 'link/x']
)
def test_an_output_inside_the_root_is_refused(
    inside: str, geopile: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / 'root'
    shutil.copytree(geopile, root)
    (tmp_path / 'link').symlink_to(root)
    before = sorted(root.rglob('*'))
    out = tmp_path / 'link' / 'x' if inside == 'link/x' else root / inside
    _one_line_refusal([str(root), str(out)], 'is inside the GeoPile root', capsys)
    assert sorted(root.rglob('*')) == before


@given(scheme=SCHEMES, rest=REST)
@FUNCTION
def test_scheme_colon_anything_is_refused_as_a_url(
    geopile: Path,
    scheme: str,
    rest: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = f'{scheme}:{rest}'
    if out.startswith(('s3://', 'gs://')):
        return
    monkeypatch.chdir(tmp_path)
    _refused_as_url(geopile, out)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize('out', ['', ' ', 'mailto:x', 'out:1', 'C:\\shards'])
def test_empty_or_url_like_output_is_refused(
    out: str,
    geopile: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    _one_line_refusal([str(geopile), out], '', capsys)
    assert list(tmp_path.iterdir()) == []
    # a local name with a colon is still possible, spelled as a path
    assert main(['shard', str(geopile), './out:1']) == 0
    assert (tmp_path / 'out:1' / 'index.json').is_file()


@pytest.mark.parametrize(
    ('option', 'value', 'match'),
    [
        ('--storage-options', '[1]', 'expected a JSON object'),
        ('--storage-options', '1', 'expected a JSON object'),
        ('--storage-options', '"s"', 'expected a JSON object'),
        ('--storage-options', 'x', 'expected a JSON object'),
        ('--storage-options', '{"a": {"b": [1]}}', 'storage options are for s3://'),
        ('--num-workers', '-1', 'expected an integer from 0 to'),
        ('--num-workers', '10000000000', 'expected an integer from 0 to'),
        ('--sources', 'naip\nnaip', "sources ['naip'] are given more than once"),
    ],
)
def test_bad_options_are_refused_before_any_work(
    option: str,
    value: str,
    match: str,
    geopile: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / 'out'
    _one_line_refusal(
        [str(geopile), str(out), option, *value.split('\n')], match, capsys
    )
    assert list(tmp_path.iterdir()) == []


def test_sources_without_a_root_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [str(tmp_path / 'out'), '--naip', 'tests/data/naip', '--naip-chips', '1']
    _one_line_refusal([*argv, '--sources', 'resisc45'], 'none was given', capsys)
    assert list(tmp_path.iterdir()) == []


def test_a_failing_worker_is_one_line_and_leaves_nothing(
    geopile: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from torchgeo_gfm.datasets.shards import writing

    def fail(*args: object) -> None:
        raise UnicodeEncodeError('utf-8', 'x', 0, 1, 'surrogates not allowed')

    monkeypatch.setattr(writing._Encode, '_sample', fail)
    out = tmp_path / 'new' / 'out'
    _one_line_refusal(
        [str(geopile), str(out)],
        'writing the shards failed (UnicodeEncodeError: ',
        capsys,
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
@pytest.mark.parametrize('sig', [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_an_interrupted_run_stops_its_workers_and_leaves_nothing(
    sig: int, tmp_path: Path
) -> None:
    """litdata leaves its workers running when interrupted: the command stops them.

    SIGINT: litdata's own handler exited with status 0, leaving the partial output.
    SIGKILL: the workers notice their parent is gone; the partial is removed by the
    next run (tests/test_outputs.py).
    """
    argv = ['shard', 'out', '--naip', os.path.abspath('tests/data/naip')]
    argv += ['--naip-chips', '1000000', '--naip-size', '8', '--num-workers', '1']
    code = f'from torchgeo_gfm.cli import main; raise SystemExit(main({argv!r}))'
    log = tmp_path.parent / f'{tmp_path.name}.log'
    with open(log, 'wb') as stderr:
        proc = subprocess.Popen(
            [sys.executable, '-c', code], cwd=tmp_path, stderr=stderr
        )
    for _ in range(600):  # the chips are being written
        if any('.partial-' in p.name for p in tmp_path.iterdir()) and _children(
            proc.pid
        ):
            break
        time.sleep(0.1)
    workers = _children(proc.pid)
    assert workers
    proc.send_signal(sig)
    assert proc.wait(timeout=60) == (-sig if sig == signal.SIGKILL else 128 + sig)
    assert b'Traceback' not in log.read_bytes()
    for _ in range(100):
        if not [pid for pid in workers if _alive(pid)]:
            break
        time.sleep(0.1)
    assert not [pid for pid in workers if _alive(pid)]
    if sig != signal.SIGKILL:
        assert list(tmp_path.iterdir()) == []


def _children(pid: int) -> list[int]:
    from torchgeo_gfm.datasets.shards.processes import descendants

    return descendants(pid)


def _alive(pid: int) -> bool:
    from torchgeo_gfm.datasets.shards.processes import running

    return running(pid)
