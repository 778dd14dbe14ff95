# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""A real S3-compatible server (moto) on 127.0.0.1 and a synthetic GeoPile, sharded once."""

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from torchgeo_gfm.datasets import write_geopile_shards, write_synthetic_geopile

#: 2 sources x 5 classes x 4 = 40 square JPEGs: 2 ranks x 2 workers x batch 2 divide it,
#: so an epoch drops nothing and every sample must be served exactly once
IMAGES_PER_CLASS = 4


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope='session')
def s3_server() -> Iterator[str]:
    """moto's standalone S3 server; the standard AWS_* variables point at it."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address='127.0.0.1', port=port, verbose=False)
    server.start()
    endpoint = f'http://127.0.0.1:{port}'
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv('AWS_ENDPOINT_URL', endpoint)
        mp.setenv('AWS_ACCESS_KEY_ID', 'testing')
        mp.setenv('AWS_SECRET_ACCESS_KEY', 'testing')
        mp.setenv('AWS_DEFAULT_REGION', 'us-east-1')
        import boto3

        boto3.client('s3').create_bucket(Bucket='geopile')
        yield endpoint
    server.stop()


@pytest.fixture(scope='session')
def geopile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp('geopile')
    return write_synthetic_geopile(
        root,
        images_per_class=IMAGES_PER_CLASS,
        sources=('naip', 'resisc45'),
        sizes=(64,),
        formats=False,  # square RGB JPEGs: decoding at 64 px is exact, hashes identify
        seed=0,
    )


@pytest.fixture(scope='session')
def s3_shards(s3_server: str, geopile: Path) -> str:
    url = 's3://geopile/v0'
    write_geopile_shards(geopile, url, chunk_bytes='16kb')  # ~6 shards
    return url


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    path = str(tmp_path / 'cache')
    monkeypatch.setenv('TEST_CACHE', path)
    os.makedirs(path)
    return path
