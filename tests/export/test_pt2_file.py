# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Reading .pt2 archives: hostile ones refused (and what torch.export.load alone does
with them), foreign entries, the guards of two inputs, running on a GPU."""

import builtins
import contextlib
import io
import json
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.export.exported_files import (
    Made,
    edit_program,
    edit_pt2,
    example,
    stacked,
    tiny,
    tiny_files,
)
from torchgeo_gfm.export import load_exported
from torchgeo_gfm.export.metadata import ExportError


@pytest.fixture(scope='module')
def make(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Made]:
    return tiny_files(tmp_path_factory)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')
def test_pt2_on_gpu(make: Callable[..., Made]) -> None:
    module, meta, path = make('change', '.pt2')
    model = load_exported(path, device='cuda')
    inputs = example(meta, 3)
    got = model(stacked(inputs).cuda())
    assert got.device.type == 'cuda'
    assert (got.cpu() - module(*inputs)).abs().max().item() <= 1e-4


# --- hostile files


class Payload:
    """Creates a marker file when unpickled (a stand-in for any code)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return builtins.open, (str(self.marker), 'w')


def _pickled(marker: Path) -> bytes:
    buffer = io.BytesIO()
    torch.save(Payload(marker), buffer)
    return buffer.getvalue()


def _pickled_weight(marker: Path) -> Callable[[dict[str, bytes]], None]:
    def change(entries: dict[str, bytes]) -> None:
        config = json.loads(entries['data/weights/model_weights_config.json'])
        payload = next(iter(config['config'].values()))
        payload['use_pickle'] = True
        entries[f'data/weights/{payload["path_name"]}'] = _pickled(marker)
        entries['data/weights/model_weights_config.json'] = json.dumps(config).encode()

    return change


def _pickled_sample(marker: Path) -> Callable[[dict[str, bytes]], None]:
    def change(entries: dict[str, bytes]) -> None:
        entries['data/sample_inputs/model.pt'] = _pickled(marker)

    return change


def _guard(marker: Path) -> Callable[[dict[str, Any]], None]:
    def change(program: dict[str, Any]) -> None:
        program['guards_code'] = [f"open('{marker}', 'w') is not None"]

    return change


def _shape_expression(marker: Path) -> Callable[[dict[str, Any]], None]:
    def change(program: dict[str, Any]) -> None:
        for value in program['graph_module']['graph']['tensor_values'].values():
            for size in value['sizes']:
                if 'as_expr' in size:
                    text = size['as_expr']['expr_str']
                    size['as_expr']['expr_str'] = (
                        f"{text} + 0 * len(str(open('{marker}', 'w')))"
                    )

    return change


def _walk_nodes(program: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from program['graph_module']['graph']['nodes']


HOSTILE: dict[str, tuple[str, Callable[[Path], Any], bool]] = {
    # name: (archive or program, the change of a marker path, whether torch runs it)
    'pickled weight': ('archive', _pickled_weight, True),
    'pickled example inputs': ('archive', _pickled_sample, True),
    'guard code': ('program', _guard, True),
    'shape expression': ('program', _shape_expression, True),
    'operator': (
        'program',
        lambda marker: lambda p: next(_walk_nodes(p)).update(target='torch.os.system'),
        False,
    ),
    'legacy weights': (
        'archive',
        lambda marker: lambda e: e.update({'data/weights/model.pt': _pickled(marker)}),
        False,
    ),
    'opaque constant': (
        'archive',
        lambda marker: (
            lambda e: e.update(
                {
                    'data/constants/model_constants_config.json': json.dumps(
                        {
                            'config': {
                                'x': {'path_name': 'opaque_obj_0', 'use_pickle': False}
                            }
                        }
                    ).encode()
                }
            )
        ),
        False,
    ),
}


def _hostile(make: Callable[..., Made], tmp_path: Path, case: str) -> tuple[Path, Path]:
    where, change, _ = HOSTILE[case]
    _, _, path = make('segmentation', '.pt2')
    marker = tmp_path / 'marker'
    out = tmp_path / 'hostile.pt2'
    edit = edit_pt2 if where == 'archive' else edit_program
    edit(path, out, change(marker))
    return out, marker


@pytest.mark.parametrize('case', HOSTILE)
def test_hostile_pt2_refused(
    make: Callable[..., Made], tmp_path: Path, case: str
) -> None:
    out, marker = _hostile(make, tmp_path, case)
    with pytest.raises(ExportError, match=r'hostile\.pt2: .*refused'):
        load_exported(out)
    assert not marker.exists()


@pytest.mark.parametrize('case', [c for c, (_, _, runs) in HOSTILE.items() if runs])
def test_hostile_pt2_runs_in_torch(
    make: Callable[..., Made], tmp_path: Path, case: str
) -> None:
    """What the refused files do to torch.export.load alone (torch 2.14): they run code."""
    out, marker = _hostile(make, tmp_path, case)
    # torch may fail after the payload ran: the marker says whether it did
    with contextlib.suppress(Exception):
        torch.export.load(out).module()(*example(tiny()[1], 2))
    assert marker.exists()


# --- archives of another form


def test_pt2_compressed_or_foreign_entries(
    make: Callable[..., Made], tmp_path: Path
) -> None:
    _, _, path = make(suffix='.pt2')
    out = tmp_path / 'deflated.pt2'
    with (
        zipfile.ZipFile(path) as source,
        zipfile.ZipFile(out, 'w', zipfile.ZIP_DEFLATED) as z,
    ):
        for name in source.namelist():
            z.writestr(name, source.read(name))
    with pytest.raises(ExportError, match='compressed'):
        load_exported(out)
    extra = edit_pt2(path, tmp_path / 'extra.pt2', lambda e: e.update({'../x.py': b''}))
    with pytest.raises(ExportError, match=r"holds '.*x\.py'"):
        load_exported(extra)


@pytest.mark.parametrize('config', [[], {'config': []}, {'config': {'x': 5}}])
def test_pt2_weights_config_of_another_form(
    make: Callable[..., Made], tmp_path: Path, config: object
) -> None:
    _, _, path = make(suffix='.pt2')
    name = 'data/weights/model_weights_config.json'
    out = edit_pt2(
        path,
        tmp_path / 'odd.pt2',
        lambda e: e.update({name: json.dumps(config).encode()}),
    )
    with pytest.raises(
        ExportError, match=r'model_weights_config\.json of another form'
    ):
        load_exported(out)


def test_pt2_guards_of_two_inputs_accepted(make: Callable[..., Made]) -> None:
    """Change detection: the graph guards that both inputs have the same batch size."""
    _, _, path = make('change', '.pt2')
    with zipfile.ZipFile(path) as archive:
        name = next(n for n in archive.namelist() if n.endswith('models/model.json'))
        assert json.loads(archive.read(name))['guards_code']
    assert load_exported(path).images == 2


def test_pt2_dependency_missing(
    make: Callable[..., Made], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, _, path = make(suffix='.pt2')

    def missing(*args: object, **kwargs: object) -> object:
        raise ModuleNotFoundError("No module named 'sympy'", name='sympy')

    monkeypatch.setattr(torch.export, 'load', missing)
    with pytest.raises(ExportError, match=r"needs 'sympy'.*pip install sympy"):
        load_exported(path)
