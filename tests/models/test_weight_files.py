# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Every loader of weight files refuses bad input clearly, naming the file.

Loaders x bad inputs (empty, random, truncated, another architecture, integer or boolean
weights, NaN, Inf, pickles that try to run code); plus properties of the format sniffing
and of :func:`save_backbone`.
"""

import json
import os
import pickle
import random
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import safetensors.torch
import timm
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor

from tests.data.gfm.data import TINY
from torchgeo_gfm.cli import main as cli_main
from torchgeo_gfm.models import (
    GFMCheckpointError,
    gfm_swin_b,
    load_backbone,
    load_upstream_checkpoint,
    read_gfm_weights,
    save_backbone,
    sniff_format,
    student_state_dict,
)
from torchgeo_gfm.models.checkpoint import (
    BACKBONE_FORMAT,
    BACKBONE_FORMAT_VERSION,
    backbone_sensor,
)
from torchgeo_gfm.tasks.super_resolution import load_backbone_file

StateDict = dict[str, Tensor]
Transform = Callable[[StateDict], StateDict]


class _Exploit:
    """Pickles as a call to os.system: what a tampered file would contain."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f'touch {self.marker}',))


# ------------------------------------------------------------------ valid files
@pytest.fixture(scope='module')
def upstream(tiny_gfm: Path) -> dict[str, Any]:
    """The tiny authors' checkpoint (config as plain dicts: it saves weights-only).

    Without its teacher and optimizer state: smaller files, same loaders.
    """
    up = load_upstream_checkpoint(tiny_gfm)
    model = {k: v for k, v in up['model'].items() if not k.startswith('teacher.')}
    return {**up, 'model': model, 'optimizer': {}}


@pytest.fixture(scope='module')
def student(upstream: dict[str, Any]) -> StateDict:
    return student_state_dict(upstream)


def _write_upstream(
    path: Path, up: dict[str, Any], sd: StateDict, f: Transform
) -> None:
    torch.save({**up, 'model': f(up['model'])}, path)


def _write_backbone(
    path: Path, up: dict[str, Any], sd: StateDict, f: Transform
) -> None:
    meta = {'format': BACKBONE_FORMAT, 'format_version': BACKBONE_FORMAT_VERSION}
    safetensors.torch.save_file(f(sd), path, metadata=meta)


def _write_lightning(
    path: Path, up: dict[str, Any], sd: StateDict, f: Transform
) -> None:
    state = {f'model.student.{k}': v for k, v in f(sd).items()}
    hparams = {'model': 'gfm_swin_base', 'in_channels': 3}
    torch.save({'state_dict': state, 'hyper_parameters': hparams, 'epoch': 1}, path)


def _write_torchgeo_task(
    path: Path, up: dict[str, Any], sd: StateDict, f: Transform
) -> None:
    state = {f'model.{k}': v for k, v in f(sd).items()}
    torch.save(
        {'state_dict': state, 'hyper_parameters': {'model': 'gfm_swin_base'}}, path
    )


def _write_state_dict(
    path: Path, up: dict[str, Any], sd: StateDict, f: Transform
) -> None:
    torch.save(f(sd), path)


#: file formats: how to write a valid one, with a transform of its tensors
WRITERS: dict[str, Callable[[Path, dict[str, Any], StateDict, Transform], None]] = {
    'upstream': _write_upstream,
    'backbone': _write_backbone,
    'lightning': _write_lightning,
    'torchgeo_task': _write_torchgeo_task,
    'state_dict': _write_state_dict,
}


# ---------------------------------------------------------------------- loaders
def _cli(command: str) -> Callable[[Path], Any]:
    def run(path: Path) -> None:
        out = path.parent / 'out' / 'exported.safetensors'
        if cli_main([command, str(path), str(out)]) != 0:
            raise SystemExit(1)
        assert load_backbone(out)

    return run


def _timm(path: Path) -> Any:
    overlay = {'file': str(path)}
    return timm.create_model(
        'gfm_swin_base', pretrained=True, pretrained_cfg_overlay=overlay, **TINY
    )


#: loader -> (call, formats it accepts)
LOADERS: dict[str, tuple[Callable[[Path], Any], tuple[str, ...]]] = {
    'load_upstream_checkpoint': (load_upstream_checkpoint, ('upstream',)),
    'load_backbone': (load_backbone, ('backbone',)),
    'read_gfm_weights': (read_gfm_weights, ('upstream', 'backbone')),
    'gfm_swin_b': (lambda p: gfm_swin_b(p, **TINY), ('upstream', 'backbone')),
    'timm': (_timm, ('upstream', 'backbone')),
    'load_backbone_file': (
        load_backbone_file,
        ('backbone', 'state_dict', 'torchgeo_task'),
    ),
    'export': (_cli('export'), ('lightning',)),
    'convert': (_cli('convert'), ('upstream',)),
}


def _refusal(loader: str, path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """The error message of *loader* on *path* (which it must refuse)."""
    call = LOADERS[loader][0]
    if loader in ('export', 'convert'):
        capsys.readouterr()
        with pytest.raises(SystemExit):
            call(path)
        err = capsys.readouterr().err
        assert err.startswith(f'torchgeo-gfm {loader}: error: ')
        assert 'Traceback' not in err
        assert not (path.parent / 'out' / 'exported.safetensors').exists()
        return err
    with pytest.raises(GFMCheckpointError) as info:
        call(path)
    return str(info.value)


# ------------------------------------------------------------------- bad inputs
def _floats(f: Callable[[Tensor], Tensor]) -> Transform:
    return lambda sd: {k: f(v) if v.is_floating_point() else v for k, v in sd.items()}


def _poison(value: float) -> Transform:
    def f(sd: StateDict) -> StateDict:
        key = next(k for k in sd if k.endswith('norm.weight'))
        bad = sd[key].clone()
        bad[0] = value
        return {**sd, key: bad}

    return f


#: tensor transforms that make a file of any format bad
BAD_TENSORS: dict[str, Transform] = {
    'int32': _floats(lambda v: v.to(torch.int32)),
    'bool': _floats(lambda v: v.to(torch.bool)),
    'nan': _poison(float('nan')),
    'inf': _poison(float('inf')),
    'neg_inf': _poison(float('-inf')),
}


def _resnet18() -> StateDict:
    return timm.create_model('resnet18', num_classes=0).state_dict()


def _write_whole_file(kind: str, path: Path, marker: Path) -> None:
    """Bad files that are bad whatever format the loader expects."""
    if kind == 'empty':
        path.write_bytes(b'')
    elif kind == 'random':
        path.write_bytes(random.Random(0).randbytes(4096))
    elif kind == 'resnet18_torch':
        torch.save(_resnet18(), path)
    elif kind == 'resnet18_safetensors':
        safetensors.torch.save_file(_resnet18(), path)
    elif kind == 'pickle_raw':
        path.write_bytes(pickle.dumps({'model': _Exploit(marker)}, protocol=2))
    elif kind == 'pickle_zip':
        torch.save({'state_dict': _Exploit(marker), 'model': _Exploit(marker)}, path)
    else:
        raise AssertionError(kind)


WHOLE_FILE = (
    'empty',
    'random',
    'resnet18_torch',
    'resnet18_safetensors',
    'pickle_raw',
    'pickle_zip',
)


def _cases(kinds: tuple[str, ...], per_format: bool) -> list[Any]:
    cases = []
    for loader, (_, formats) in LOADERS.items():
        for fmt in formats if per_format else formats[:1]:
            for kind in kinds:
                if loader == 'load_backbone_file' and kind.startswith('resnet18'):
                    continue  # a fine file for a ResNet backbone (the task checks keys)
                if fmt == 'backbone' and kind == 'pickle_nested':
                    continue  # safetensors cannot hold objects
                cases.append(
                    pytest.param(loader, fmt, kind, id=f'{loader}-{fmt}-{kind}')
                )
    return cases


@pytest.mark.parametrize(('loader', 'fmt', 'kind'), _cases(WHOLE_FILE, False))
def test_bad_file(
    loader: str, fmt: str, kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / 'pwned'
    path = tmp_path / f'{kind}.weights'
    _write_whole_file(kind, path, marker)
    message = _refusal(loader, path, capsys)
    assert str(path) in message
    assert 'xpected' in message  # says what the file should have been
    assert not marker.exists()


FORMAT_KINDS = ('valid', 'truncated', 'pickle_nested', *BAD_TENSORS)


@pytest.mark.parametrize(('loader', 'fmt', 'kind'), _cases(FORMAT_KINDS, True))
def test_bad_content(
    loader: str,
    fmt: str,
    kind: str,
    upstream: dict[str, Any],
    student: StateDict,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    marker = tmp_path / 'pwned'
    path = tmp_path / f'{kind}.{fmt}'
    write = WRITERS[fmt]
    if kind == 'pickle_nested':
        up = {**upstream, 'config': {'MODEL': [_Exploit(marker)]}}
        write(path, up, student, lambda sd: {**sd, 'x': _Exploit(marker)})  # type: ignore[dict-item]
    else:
        write(path, upstream, student, BAD_TENSORS.get(kind, dict))
    if kind == 'truncated':
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    if kind == 'valid':
        LOADERS[loader][0](path)
        return
    message = _refusal(loader, path, capsys)
    assert str(path) in message
    assert 'xpected' in message
    if kind in BAD_TENSORS:
        assert (
            'NaN or Inf' if 'inf' in kind or kind == 'nan' else 'floating'
        ) in message
        assert 'weight' in message  # names the first offending tensors
    assert not marker.exists()


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / 'nope.pth'
    for loader, (call, _) in LOADERS.items():
        if loader in ('export', 'convert'):
            assert cli_main([loader, str(path), str(tmp_path / 'o.safetensors')]) == 2
            assert str(path) in capsys.readouterr().err
            continue
        with pytest.raises(FileNotFoundError, match=str(path)):
            call(path)


def test_shape_mismatch_names_the_file(student: StateDict, tmp_path: Path) -> None:
    # keys and architecture right, one tensor misshapen: torch's 'size mismatch'
    path = tmp_path / 'misshapen.safetensors'
    bad = {**student, 'layers.0.blocks.0.mlp.fc1.weight': torch.zeros(3, 16)}
    _write_backbone(path, {}, bad, dict)
    for load in (lambda p: gfm_swin_b(p, **TINY), _timm):
        with pytest.raises(
            GFMCheckpointError,
            match=r'misshapen\.safetensors: .*size mismatch for layers',
        ):
            load(path)


def test_incomplete_student_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a dict that only looks like GFM used to convert into a useless file (exit 0)
    path = tmp_path / 'fake.pth'
    weight = torch.zeros(16, 3, 4, 4)
    torch.save(
        {'model': {'encoder.patch_embed.proj.weight': weight}, 'config': {}}, path
    )
    out = tmp_path / 'out.safetensors'
    assert cli_main(['convert', str(path), str(out)]) == 2
    err = capsys.readouterr().err
    assert 'fake.pth' in err
    assert 'not a complete Swin' in err
    assert not out.exists()


# ----------------------------------------------------------- format sniffing
@pytest.mark.parametrize('low_byte', [0x80, 0x50])
def test_export_loads_back_whatever_the_header_length(
    low_byte: int, tiny_gfm: Path, student: StateDict, tmp_path: Path
) -> None:
    # about 1 file in 32 used to start with 0x80 and be taken for a pickle
    path = tmp_path / 'b.safetensors'
    save_backbone(student, path, metadata={'pad': ''})
    n = int.from_bytes(path.read_bytes()[:8], 'little')
    save_backbone(student, path, metadata={'pad': '#' * ((low_byte - n) % 256)})
    assert path.read_bytes()[0] == low_byte
    assert sniff_format(path) == 'safetensors'
    for load in LOADERS['gfm_swin_b'][0], _timm, load_backbone_file:
        load(path)


_names = st.text('abcdefghij._0123456789', min_size=1, max_size=24)
_shapes = st.lists(st.integers(0, 3), max_size=3)
_dtypes = st.sampled_from([torch.float32, torch.float16, torch.bfloat16, torch.float64])
_meta = st.dictionaries(st.text(max_size=12), st.text(max_size=300), max_size=4)


@settings(max_examples=40, deadline=None)
@given(
    st.dictionaries(_names, st.tuples(_shapes, _dtypes), min_size=1, max_size=6),
    _meta,
    st.integers(0, 2**31),
)
def test_save_backbone_roundtrip(
    spec: dict[str, tuple[list[int], torch.dtype]], metadata: dict[str, str], seed: int
) -> None:
    gen = torch.Generator().manual_seed(seed)
    tensors = {k: torch.randn(s, generator=gen).to(d) for k, (s, d) in spec.items()}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / 'b.safetensors'
        save_backbone(tensors, path, metadata=metadata)
        assert sniff_format(path) == 'safetensors'
        for loaded in load_backbone(path), read_gfm_weights(path):
            assert loaded.keys() == tensors.keys()
            assert all(torch.equal(loaded[k], v) for k, v in tensors.items())
        assert os.listdir(tmp) == ['b.safetensors']  # no temporary file left


def _parses_as_safetensors(data: bytes) -> bool:
    """Independent oracle: length within the file, then a JSON object."""
    if len(data) < 8:
        return False
    n = int.from_bytes(data[:8], 'little')
    if not 2 <= n <= len(data) - 8:
        return False
    try:
        return isinstance(json.loads(data[8 : 8 + n]), dict)
    except ValueError:
        return False


_header = st.builds(
    lambda n, body: n.to_bytes(8, 'little') + b'{' + body,
    st.integers(0, 300),
    st.binary(max_size=300) | st.just(b'"a": 1}') | st.just(b'}   '),
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64) | _header)
def test_sniff_random_bytes(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / 'f'
        path.write_bytes(data)
        fmt = sniff_format(path)
    assert (fmt == 'safetensors') == _parses_as_safetensors(data)
    if fmt != 'safetensors':
        if data[:4] == b'PK\x03\x04':
            assert fmt == 'torch-zip'
        elif data[:1] == b'\x80' and data[1:2] in (b'\x02', b'\x03', b'\x04', b'\x05'):
            assert fmt == 'torch-pickle'
        else:
            assert fmt is None


# ------------------------------------------------------------ recorded sensor
def test_convert_and_export_record_the_sensor(
    tiny_gfm: Path, student: StateDict, tmp_path: Path
) -> None:
    from torchgeo_gfm.models.bands import adapt_patch_embed
    from torchgeo_gfm.models.convert import convert
    from torchgeo_gfm.models.swin_state import PATCH_EMBED
    from torchgeo_gfm.sensors import get_sensor
    from torchgeo_gfm.tasks.export import export_checkpoint

    s2 = get_sensor('s2')
    convert(tiny_gfm, tmp_path / 'converted.safetensors', force=False)
    assert backbone_sensor(tmp_path / 'converted.safetensors') == get_sensor('rgb')
    assert backbone_sensor(tiny_gfm) is None  # the authors' file: RGB, unrecorded
    bands13 = {**student, PATCH_EMBED: adapt_patch_embed(student[PATCH_EMBED], 13)}
    cases = [  # (student, sensor hyper-parameter, what the file records)
        (bands13, s2.to_dict(), s2),  # ContinualPretraining records its dict
        (bands13, 's2', s2),
        (student, None, get_sensor('rgb')),  # a pretraining run before 0.2
        (bands13, None, None),
    ]
    for i, (state, hparam, recorded) in enumerate(cases):
        ckpt, out = tmp_path / f'{i}.ckpt', tmp_path / f'{i}.safetensors'
        _write_pretraining(ckpt, state, hparam)
        export_checkpoint(ckpt, out)
        assert backbone_sensor(out) == recorded
        assert load_backbone(out)[PATCH_EMBED].shape[1] == state[PATCH_EMBED].shape[1]
    _write_pretraining(tmp_path / 'bad.ckpt', student, 's2')  # 3 bands, sensor 13
    with pytest.raises(GFMCheckpointError, match=r'sensor hyper-parameter.*13'):
        export_checkpoint(tmp_path / 'bad.ckpt', tmp_path / 'bad.safetensors')
    assert not (tmp_path / 'bad.safetensors').exists()


def _write_pretraining(path: Path, state: StateDict, sensor: object) -> None:
    """A ContinualPretraining checkpoint as Lightning saves it (hparams as recorded)."""
    weights = {f'model.student.{k}': v for k, v in state.items()}
    hparams = {'model': 'gfm_swin_base', 'sensor': sensor}
    torch.save({'state_dict': weights, 'hyper_parameters': hparams}, path)


def test_recorded_sensor_that_is_not_one(student: StateDict, tmp_path: Path) -> None:
    path = tmp_path / 'b.safetensors'
    save_backbone(student, path)  # files before 0.2 record none: RGB
    assert backbone_sensor(path) is None
    for value, message in [('{"name": "x"', 'not a sensor'), ('{}', 'missing')]:
        save_backbone(student, path, metadata={'sensor': value})
        with pytest.raises(GFMCheckpointError, match=message) as error:
            backbone_sensor(path)
        assert str(path) in str(error.value)
