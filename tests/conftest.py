# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Shared fixtures: no network, private caches, and a local HTTP server for download tests."""

import functools
import http.server
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# Before anything imports huggingface_hub or torch.hub: no test may reach the internet, and no
# test may read or fill the user's caches. Download tests point these at a local server.
_CACHE = tempfile.mkdtemp(prefix='torchgeo-gfm-tests-')
os.environ['HF_HUB_OFFLINE'] = '1'
os.environ['HF_HOME'] = os.path.join(_CACHE, 'hf')
os.environ['TORCH_HOME'] = os.path.join(_CACHE, 'torch')
os.environ.setdefault('MPLBACKEND', 'Agg')


#: ``GFM_TEST_CPU=native|emulated`` runs the suite as on a CPU with or without native bf16
#: (AVX512-BF16/AMX), whatever this one has: every branch on the CPU, on any machine
_FORCED_CPU = {
    'native': frozenset({'avx2', 'avx512_bf16'}),
    'emulated': frozenset({'avx2'}),
}


@pytest.fixture(autouse=True, scope='session')
def _forced_cpu() -> Iterator[None]:
    kind = os.environ.get('GFM_TEST_CPU')
    if not kind:
        yield
        return
    from torchgeo_gfm import precision

    flags = _FORCED_CPU[kind]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(precision, 'cpu_flags', lambda: flags)
        yield


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope='session')
def serve_directory() -> Iterator[Callable[[Path | str], str]]:
    """Serve a folder over HTTP on 127.0.0.1; returns its base URL (ends with '/')."""
    servers: list[http.server.ThreadingHTTPServer] = []

    def serve(directory: Path | str) -> str:
        handler = functools.partial(_QuietHandler, directory=str(directory))
        server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f'http://127.0.0.1:{server.server_address[1]}/'

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()
