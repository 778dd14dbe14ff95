# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Download paths, served from 127.0.0.1: plain URL (GFM_Weights) and the Hugging Face Hub."""

import hashlib
import http.server
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import huggingface_hub.constants
import pytest
import timm
import torch

from torchgeo_gfm.models import (
    GFM_Weights,
    load_upstream_checkpoint,
    student_state_dict,
)

COMMIT = 'a' * 40


def _hub_handler(root: Path, sha256: str) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        """Mimics ``{endpoint}/{repo}/resolve/{revision}/{file}`` of the Hub (LFS file)."""

        def _headers(self) -> Path | None:
            parts = self.path.split('?')[0].strip('/').split('/')
            if len(parts) != 5 or parts[2] != 'resolve':
                self.send_error(404)
                return None
            file = root / parts[0] / parts[1] / parts[4]
            if not file.is_file():
                self.send_error(404)
                return None
            self.send_response(200)
            self.send_header('X-Repo-Commit', COMMIT)
            self.send_header('X-Linked-Etag', f'"{sha256}"')
            self.send_header('ETag', f'"{sha256}"')
            self.send_header('Content-Length', str(file.stat().st_size))
            self.end_headers()
            return file

        def do_HEAD(self) -> None:
            self._headers()

        def do_GET(self) -> None:
            file = self._headers()
            if file is not None:
                self.wfile.write(file.read_bytes())

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def hub(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[Path, str | None], None]]:
    servers: list[http.server.ThreadingHTTPServer] = []

    def serve(file: Path, sha256: str | None = None) -> None:
        root = tmp_path / 'hub'
        (root / 'torchgeo' / 'gfm').mkdir(parents=True)
        shutil.copy(file, root / 'torchgeo' / 'gfm' / 'gfm.pth')
        sha256 = sha256 or hashlib.sha256(file.read_bytes()).hexdigest()
        server = http.server.ThreadingHTTPServer(
            ('127.0.0.1', 0), _hub_handler(root, sha256)
        )
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        endpoint = f'http://127.0.0.1:{server.server_address[1]}'
        c = huggingface_hub.constants
        monkeypatch.setattr(c, 'HF_HUB_OFFLINE', False)
        monkeypatch.setattr(c, 'ENDPOINT', endpoint)
        monkeypatch.setattr(
            c,
            'HUGGINGFACE_CO_URL_TEMPLATE',
            endpoint + '/{repo_id}/resolve/{revision}/{filename}',
        )
        monkeypatch.setattr(c, 'HF_HUB_CACHE', str(tmp_path / 'hf-cache'))

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def private_torch_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(torch.hub, '_hub_dir', str(tmp_path / 'torch-hub'))
    return Path(torch.hub.get_dir()) / 'checkpoints'


def test_timm_pretrained_from_hub(
    hub: Any, tiny_gfm: Path, tiny_arch: dict[str, Any]
) -> None:
    hub(tiny_gfm)
    model = timm.create_model('gfm_swin_base', pretrained=True, **tiny_arch)
    expected = student_state_dict(load_upstream_checkpoint(tiny_gfm))
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in expected.items())
    # downloaded once into the Hub cache by huggingface_hub
    assert len(list(Path(huggingface_hub.constants.HF_HUB_CACHE).rglob('gfm.pth'))) == 1


def test_weights_get_state_dict_from_url(
    serve_directory: Callable[[Path], str],
    tiny_gfm: Path,
    private_torch_hub: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    weights = GFM_Weights.GEOPILE_RGB_GFM
    url = serve_directory(tiny_gfm.parent) + tiny_gfm.name
    monkeypatch.setattr(weights.value, 'url', url)
    sha = hashlib.sha256(tiny_gfm.read_bytes()).hexdigest()
    monkeypatch.setitem(weights.meta, 'sha256', sha)
    state = weights.get_state_dict(progress=False)
    expected = student_state_dict(load_upstream_checkpoint(tiny_gfm))
    assert list(state) == list(expected)
    assert (private_torch_hub / 'gfm.pth').exists()


def test_weights_checksum_mismatch(
    serve_directory: Callable[[Path], str],
    tiny_gfm: Path,
    private_torch_hub: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    weights = GFM_Weights.GEOPILE_RGB_GFM
    monkeypatch.setattr(
        weights.value, 'url', serve_directory(tiny_gfm.parent) + 'gfm.pth'
    )
    monkeypatch.setitem(weights.meta, 'sha256', '0' * 64)
    with pytest.raises(RuntimeError, match='invalid hash value'):
        weights.get_state_dict(progress=False)
    assert not (private_torch_hub / 'gfm.pth').exists()
