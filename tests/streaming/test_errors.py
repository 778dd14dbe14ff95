# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Clear errors: a missing bucket or prefix, bad credentials, a truncated shard."""

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from litdata import StreamingDataLoader

from torchgeo_gfm.cli import main
from torchgeo_gfm.datasets import GeoPileStreamingDataset, write_geopile_shards
from torchgeo_gfm.datasets.shards import ShardError

from .conftest import free_port


def test_missing_bucket(s3_shards: str, cache_dir: str) -> None:
    with pytest.raises(ShardError, match=r"bucket 'nobucket' .* does not exist"):
        GeoPileStreamingDataset('s3://nobucket/v0', cache_dir=cache_dir)


def test_missing_prefix(s3_shards: str, cache_dir: str) -> None:
    with pytest.raises(ShardError, match='no shard index at s3://geopile/none'):
        GeoPileStreamingDataset('s3://geopile/none', cache_dir=cache_dir)


def test_missing_local_folder(tmp_path: Path) -> None:
    with pytest.raises(ShardError, match='torchgeo-gfm shard ROOT'):
        GeoPileStreamingDataset(str(tmp_path / 'none'), cache_dir=str(tmp_path))


@pytest.fixture
def auth_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A moto server that checks credentials (none are valid: none were created)."""
    port = free_port()
    env = {**os.environ, 'INITIAL_NO_AUTH_ACTION_COUNT': '0'}
    cmd = [sys.executable, '-m', 'moto.server', '-H', '127.0.0.1', '-p', str(port)]
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.DEVNULL)
    endpoint = f'http://127.0.0.1:{port}'
    for _ in range(600):
        try:
            urllib.request.urlopen(endpoint + '/moto-api/', timeout=1)
            break
        except OSError:
            time.sleep(0.1)
    monkeypatch.setenv('AWS_ENDPOINT_URL', endpoint)
    monkeypatch.setenv('AWS_ACCESS_KEY_ID', 'wrong')
    monkeypatch.setenv('AWS_SECRET_ACCESS_KEY', 'wrong')
    yield endpoint
    proc.terminate()
    proc.wait()


def test_bad_credentials(auth_server: str, cache_dir: str) -> None:
    with pytest.raises(ShardError, match=r'refused \(HTTP 403.*AWS_ACCESS_KEY_ID'):
        GeoPileStreamingDataset('s3://geopile/v0', cache_dir=cache_dir)


def test_truncated_shard(geopile: Path, tmp_path: Path) -> None:
    shards = tmp_path / 'shards'
    write_geopile_shards(geopile, str(shards), chunk_bytes='16kb')
    chunk = min(shards.glob('chunk-*.bin'))
    chunk.write_bytes(chunk.read_bytes()[: chunk.stat().st_size // 2])
    dataset = GeoPileStreamingDataset(str(shards), size=64, cache_dir=str(tmp_path))
    with pytest.raises(ShardError, match=r'shorter than its index\.json'):
        for _ in StreamingDataLoader(dataset, batch_size=4):
            pass
    shutil.rmtree(shards)


def _shard_refused(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(['shard', *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith('torchgeo-gfm shard: error: ')
    assert message in err
    assert err.count('\n') == 1  # no traceback


def test_shard_with_bad_credentials(
    auth_server: str, geopile: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _shard_refused(
        [str(geopile), 's3://geopile/v1'],
        'the credentials are wrong or lack permission (HTTP 403)',
        capsys,
    )


def test_shard_without_credentials(
    geopile: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in list(os.environ):
        if name.startswith('AWS_'):
            monkeypatch.delenv(name)
    monkeypatch.setenv('AWS_SHARED_CREDENTIALS_FILE', str(tmp_path / 'none'))
    monkeypatch.setenv('AWS_CONFIG_FILE', str(tmp_path / 'none'))
    monkeypatch.setenv('AWS_EC2_METADATA_DISABLED', 'true')
    _shard_refused(
        [str(geopile), 's3://geopile/v1'], 'no object-storage credentials', capsys
    )


def test_shard_to_a_missing_bucket(
    s3_server: str, geopile: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _shard_refused(
        [str(geopile), 's3://no-such-bucket/v1'],
        "bucket 'no-such-bucket' does not exist",
        capsys,
    )


def test_shard_with_the_backend_not_installed(
    geopile: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from torchgeo_gfm.datasets.shards import storage

    package = 'google-cloud-storage'
    monkeypatch.setitem(storage._BACKENDS, 'gs://', ('no_such.module', package))
    _shard_refused([str(geopile), 'gs://bucket/v1'], f'`pip install {package}`', capsys)


def test_shard_to_a_prefix_that_holds_objects_is_refused(
    s3_shards: str, geopile: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """As a non-empty local folder: refused before any work (litdata said 'None')."""
    _shard_refused([str(geopile), s3_shards], 'it already holds objects', capsys)


def test_an_all_bad_root_leaves_nothing_on_s3(
    s3_server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import boto3

    root = tmp_path / 'root'
    (root / 'a' / 'class').mkdir(parents=True)
    (root / 'a' / 'class' / 'x.jpg').write_bytes(b'\xff\xd8 not a jpeg')
    for _ in range(2):  # nothing left behind: the second run meets an empty prefix too
        assert main(['shard', str(root), 's3://geopile/all-bad']) == 2
        err = capsys.readouterr().err  # after litdata's progress bars
        assert err.splitlines()[-1].startswith('torchgeo-gfm shard: error: none of')
        assert 'Traceback' not in err
    listed = boto3.client('s3').list_objects_v2(Bucket='geopile', Prefix='all-bad/')
    assert listed['KeyCount'] == 0
