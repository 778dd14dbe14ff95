# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""The commands outside the engine: --help without torch, moved names, files read once."""

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.data.gfm.data import TINY, write_upstream_checkpoint
from torchgeo_gfm.cli import build_parser
from torchgeo_gfm.scene import SceneError, load_backbone_for_embedding
from torchgeo_gfm.scene.engine import check_device
from torchgeo_gfm.scene.predict import DEFAULT_OVERLAP

HELP_WITHOUT_TORCH = """
import contextlib, io, sys
from torchgeo_gfm.cli import main
with contextlib.redirect_stdout(io.StringIO()) as out:
    try:
        main([sys.argv[1], '--help'])
    except SystemExit:
        pass
assert '--device' in out.getvalue()
print(sorted(m for m in ('torch', 'rasterio', 'numpy') if m in sys.modules))
"""


@pytest.mark.parametrize('command', ['predict', 'embed'])
def test_help_imports_no_torch(command: str) -> None:
    run = [sys.executable, '-c', HELP_WITHOUT_TORCH, command]
    done = subprocess.run(run, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == '[]'


def test_overlap_help_states_the_default() -> None:
    help_ = build_parser(['predict'])._subparsers._group_actions[0].choices['predict']  # type: ignore[union-attr]
    overlap = next(a for a in help_._actions if a.dest == 'overlap')
    assert f'default {DEFAULT_OVERLAP},' in str(overlap.help)


def test_device_auto(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    assert check_device('auto') == torch.device('cpu')
    assert (
        build_parser(['embed']).parse_args(['embed', 'a.tif', '-o', 'e.parquet']).device
        == 'auto'
    )


def test_raster_cogwriter_is_a_deprecated_alias() -> None:
    from torchgeo_gfm.scene import raster, writers

    with pytest.warns(DeprecationWarning, match='scene.writers.COGWriter'):
        assert raster.COGWriter is writers.COGWriter


def test_gfm_weights_are_read_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the authors' format; the sniff for a Lightning checkpoint maps it (reads only its
    # pickle), gfm_swin_b reads its tensors: one full read
    path = tmp_path / 'gfm.pth'
    write_upstream_checkpoint(path, teacher=False, **TINY)
    loads: list[bool] = []
    load = torch.load

    def counting(*args: Any, **kwargs: Any) -> Any:
        loads.append(bool(kwargs.get('mmap')))
        return load(*args, **kwargs)

    monkeypatch.setattr(torch, 'load', counting)
    # Swin-B is built: the tiny weights do not fit it, after they are read
    with pytest.raises(SceneError, match='not usable as GFM weights'):
        load_backbone_for_embedding(path, 4, 3)
    assert loads.count(False) == 1
    assert loads == [True, False]
