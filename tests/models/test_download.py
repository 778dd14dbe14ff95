# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""One download route: GFM_Weights and timm both fetch through the Hub (served on 127.0.0.1)."""

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
    GFMCheckpointError,
    gfm_swin_b,
    load_upstream_checkpoint,
    student_state_dict,
)

COMMIT = 'a' * 40


def _hub_handler(
    root: Path, sha256: str, requests: list[str]
) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        """Mimics ``{endpoint}/{repo}/resolve/{revision}/{file}`` of the Hub (LFS file)."""

        def _headers(self) -> Path | None:
            requests.append(f'{self.command} {self.path}')
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
) -> Iterator[Callable[..., list[str]]]:
    """Serve a file as the Hub's torchgeo/gfm gfm.pth; returns the requests made."""
    servers: list[http.server.ThreadingHTTPServer] = []

    def serve(file: Path, sha256: str | None = None) -> list[str]:
        root = tmp_path / 'hub'
        (root / 'torchgeo' / 'gfm').mkdir(parents=True)
        shutil.copy(file, root / 'torchgeo' / 'gfm' / 'gfm.pth')
        sha256 = sha256 or hashlib.sha256(file.read_bytes()).hexdigest()
        requests: list[str] = []
        server = http.server.ThreadingHTTPServer(
            ('127.0.0.1', 0), _hub_handler(root, sha256, requests)
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
        return requests

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


def _gets(requests: list[str]) -> list[str]:
    return [r for r in requests if r.startswith('GET')]


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


def test_weights_and_timm_share_one_download(
    hub: Any, tiny_gfm: Path, tiny_arch: dict[str, Any], tmp_path: Path
) -> None:
    requests = hub(tiny_gfm)
    torch_hub = tmp_path / 'torch-hub'
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.hub, '_hub_dir', str(torch_hub))
        state = GFM_Weights.GEOPILE_RGB_GFM.get_state_dict(progress=False)
        model = timm.create_model('gfm_swin_base', pretrained=True, **tiny_arch)
        built = gfm_swin_b(GFM_Weights.GEOPILE_RGB_GFM, **tiny_arch)
    assert len(_gets(requests)) == 1  # one file, fetched once, for all three
    assert not torch_hub.exists()  # torch's cache is not used
    expected = student_state_dict(load_upstream_checkpoint(tiny_gfm))
    assert list(state) == list(expected)
    for loaded in model.state_dict(), built.state_dict():
        assert all(torch.equal(loaded[k], v) for k, v in expected.items())
    path = GFM_Weights.GEOPILE_RGB_GFM.download(progress=False)
    assert path.parent.parent.parent.name == 'models--torchgeo--gfm'  # snapshots/<rev>/


def test_weights_offline_from_hub_cache(
    hub: Any, tiny_gfm: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    requests = hub(tiny_gfm)
    GFM_Weights.GEOPILE_RGB_GFM.get_state_dict(progress=False)
    monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_OFFLINE', True)
    GFM_Weights.GEOPILE_RGB_GFM.get_state_dict(progress=False)
    assert len(_gets(requests)) == 1


def test_weights_pinned_sha256(
    hub: Any, tiny_gfm: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub(tiny_gfm)
    weights = GFM_Weights.GEOPILE_RGB_GFM
    sha = hashlib.sha256(tiny_gfm.read_bytes()).hexdigest()
    monkeypatch.setitem(weights.meta, 'sha256', sha[:8])  # a prefix, as torch.hub's
    assert weights.get_state_dict(progress=False)
    monkeypatch.setitem(weights.meta, 'sha256', '0' * 64)
    with pytest.raises(GFMCheckpointError, match='the weights pin 0000'):
        weights.get_state_dict(progress=False)
    assert weights.get_state_dict(progress=False, check_hash=False)


def test_corrupt_download_refused(hub: Any, tiny_gfm: Path) -> None:
    # the Hub says one SHA-256, the bytes have another (altered in transit or on disk)
    hub(tiny_gfm, sha256='1' * 64)
    with pytest.raises(GFMCheckpointError, match='does not match the SHA-256'):
        GFM_Weights.GEOPILE_RGB_GFM.get_state_dict(progress=False)
    with pytest.raises(GFMCheckpointError, match='does not match the SHA-256'):
        timm.create_model('gfm_swin_base', pretrained=True)


def test_weights_without_network_or_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = huggingface_hub.constants
    monkeypatch.setattr(c, 'HF_HUB_OFFLINE', True)
    monkeypatch.setattr(c, 'HF_HUB_CACHE', str(tmp_path / 'empty-cache'))
    with pytest.raises(huggingface_hub.errors.LocalEntryNotFoundError):
        GFM_Weights.GEOPILE_RGB_GFM.download(progress=False)
