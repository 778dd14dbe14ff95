# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

import os
import pickle
import re
from pathlib import Path
from typing import Any

import pytest
import safetensors
import safetensors.torch
import timm
import torch

from tests.data.gfm.data import write_upstream_checkpoint
from torchgeo_gfm.models import checkpoint as ck
from torchgeo_gfm.models import (
    student_state_dict,
    teacher_state_dict,
    upstream_mask_token,
)


def _student(path: Path) -> dict[str, torch.Tensor]:
    return student_state_dict(ck.read_gfm_weights(path))


class _Exploit:
    """Pickles as a call to os.system: what a tampered checkpoint would contain."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f'touch {self.marker}',))


def test_load_upstream(tiny_gfm: Path, tiny_arch: dict[str, Any]) -> None:
    up = ck.load_upstream_checkpoint(tiny_gfm)
    assert set(up) == {
        'model',
        'optimizer',
        'lr_scheduler',
        'max_accuracy',
        'epoch',
        'config',
        'amp',
    }
    assert type(up['config']) is dict
    assert up['config']['MODEL']['SWIN']['EMBED_DIM'] == tiny_arch['embed_dim']
    assert up['config']['TRAIN']['OPTIMIZER']['BETAS'] == [0.9, 0.999]  # plain, as YAML
    assert upstream_mask_token(up).shape == (1, 1, tiny_arch['embed_dim'])


def test_student_matches_timm_swin(tiny_gfm: Path, tiny_arch: dict[str, Any]) -> None:
    up = ck.load_upstream_checkpoint(tiny_gfm)
    student = student_state_dict(up)
    assert 'mask_token' not in student
    assert 'layers.0.downsample.reduction.weight' not in student
    assert 'layers.1.downsample.reduction.weight' in student
    assert not any(
        k.endswith(('relative_position_index', 'attn_mask')) for k in student
    )
    model = timm.create_model('gfm_swin_base', **tiny_arch)
    model.load_state_dict(student, strict=True)
    # same tensors as timm's own Microsoft->timm converter produces
    enc = {
        k[len('encoder.') :]: v
        for k, v in up['model'].items()
        if k.startswith('encoder.')
    }
    enc.pop('mask_token')
    reference = timm.models.swin_transformer.checkpoint_filter_fn(enc, model)
    assert reference.keys() == student.keys()
    assert all(torch.equal(reference[k], student[k]) for k in student)


def test_teacher_matches_timm_swin(tiny_gfm: Path, tiny_arch: dict[str, Any]) -> None:
    teacher = teacher_state_dict(ck.load_upstream_checkpoint(tiny_gfm))
    arch = {k: v for k, v in tiny_arch.items() if k != 'window_size'}
    model = timm.create_model('swin_base_patch4_window7_224', num_classes=0, **arch)
    model.load_state_dict(teacher, strict=True)


def test_tampered_pickle_does_not_run(tmp_path: Path) -> None:
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    torch.save({'model': {}, 'config': _Exploit(marker)}, path)
    with pytest.raises(ck.GFMCheckpointError, match='refused to unpickle'):
        ck.load_upstream_checkpoint(path)
    assert not marker.exists()


def test_tampered_raw_pickle(tmp_path: Path) -> None:
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pkl'
    path.write_bytes(pickle.dumps({'model': _Exploit(marker)}, protocol=2))
    with pytest.raises(ck.GFMCheckpointError, match=re.escape(str(path))):
        _student(path)
    assert not marker.exists()


def test_truncated(tiny_gfm: Path, tmp_path: Path) -> None:
    path = tmp_path / 'gfm.pth'
    path.write_bytes(tiny_gfm.read_bytes()[:100_000])
    with pytest.raises(ck.GFMCheckpointError, match='truncated'):
        ck.load_upstream_checkpoint(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r'nope\.pth'):
        ck.load_upstream_checkpoint(tmp_path / 'nope.pth')


@pytest.mark.parametrize(
    'obj',
    [
        {'state_dict': {}},
        {'model': {'conv1.weight': torch.zeros(1)}, 'config': {}},
        [1],
    ],
)
def test_foreign_checkpoint(obj: Any, tmp_path: Path) -> None:
    path = tmp_path / 'resnet.pth'
    torch.save(obj, path)
    with pytest.raises(ck.GFMCheckpointError, match=r'resnet\.pth.*expected'):
        ck.load_upstream_checkpoint(path)


def test_backbone_roundtrip(tiny_gfm: Path, tmp_path: Path) -> None:
    student = student_state_dict(ck.load_upstream_checkpoint(tiny_gfm))
    path = tmp_path / 'gfm.safetensors'
    ck.save_backbone(student, path, metadata={'source': 'test'})
    loaded = _student(path)
    assert loaded.keys() == student.keys()
    assert all(torch.equal(loaded[k], student[k]) for k in student)


def test_foreign_safetensors(tmp_path: Path) -> None:
    path = tmp_path / 'other.safetensors'
    safetensors.torch.save_file({'a': torch.zeros(1)}, path)
    with pytest.raises(ck.GFMCheckpointError, match=r'other\.safetensors.*format'):
        ck.load_backbone(path)
    junk = tmp_path / 'junk.bin'
    junk.write_bytes(b'hello world, not a checkpoint')
    with pytest.raises(ck.GFMCheckpointError, match=r'junk\.bin'):
        _student(junk)


def test_legacy_torch_format(tmp_path: Path, tiny_arch: dict[str, Any]) -> None:
    path = tmp_path / 'gfm.pth'
    model = write_upstream_checkpoint(path, teacher=False, zipfile=False, **tiny_arch)
    assert path.read_bytes()[:1] == b'\x80'  # a bare pickle, not a zip
    student = _student(path)
    assert torch.equal(student['norm.weight'], model['encoder.norm.weight'])


def test_no_teacher(tmp_path: Path, tiny_arch: dict[str, Any]) -> None:
    path = tmp_path / 'gfm.pth'
    model = write_upstream_checkpoint(path, teacher=False, **tiny_arch)
    assert not any(k.startswith('teacher.') for k in model)
    assert teacher_state_dict(ck.load_upstream_checkpoint(path)) == {}


TEACHER = 'ImageNet-22k Swin-B teacher weights'


def _write(tmp_path: Path, name: str, obj: Any) -> Path:
    path = tmp_path / name
    if name.endswith('.safetensors'):
        safetensors.torch.save_file(obj, path)
    else:
        torch.save(obj, path)
    return path


@pytest.mark.parametrize(
    ('name', 'wrap'),
    [
        ('w.safetensors', lambda sd: sd),
        ('w.pth', lambda sd: sd),
        ('w.ckpt', lambda sd: {'state_dict': sd, 'epoch': 3}),
        ('w.pth', lambda sd: {'model': sd, 'optimizer': {}}),
    ],
)
def test_read_state_dict(name: str, wrap: Any, tmp_path: Path) -> None:
    sd = {
        'a.weight': torch.randn(2, 3),
        'b.relative_position_index': torch.arange(4),  # integer buffers are fine
    }
    out = ck.read_state_dict(_write(tmp_path, name, wrap(sd)), TEACHER)
    assert out.keys() == sd.keys()
    assert all(torch.equal(out[k], v) for k, v in sd.items())


def test_read_state_dict_upstream_and_legacy(tiny_gfm: Path, tmp_path: Path) -> None:
    out = ck.read_state_dict(tiny_gfm, TEACHER)  # the authors' file: its 'model'
    assert any(k.startswith('teacher.') for k in out)
    legacy = tmp_path / 'legacy.pth'
    torch.save({'x': torch.ones(2)}, legacy, _use_new_zipfile_serialization=False)
    assert ck.sniff_format(legacy) == 'torch-pickle'
    assert torch.equal(ck.read_state_dict(legacy, TEACHER)['x'], torch.ones(2))


@pytest.mark.parametrize(
    ('content', 'match'),
    [
        (b'', 'empty'),
        (b'\x00' * 100, '100 bytes of neither format'),
        ({'x': [1, 2]}, 'not tensors'),
        ({'x': torch.ones(2, dtype=torch.int32)}, 'not floating point'),
        ({'x': torch.tensor([1.0, float('nan')])}, 'NaN or Inf'),
        ({'x': torch.tensor([float('-inf')])}, 'NaN or Inf'),
        ({}, 'no tensors'),
        ([torch.ones(1)], 'holds a list'),
    ],
)
def test_read_state_dict_refuses(content: Any, match: str, tmp_path: Path) -> None:
    path = tmp_path / 'teacher.pth'
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    with pytest.raises(ck.GFMCheckpointError, match=match) as info:
        ck.read_state_dict(path, TEACHER)
    assert str(path) in str(info.value)
    assert TEACHER in str(info.value)


def test_read_state_dict_missing_and_directory(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=f'nope.pth.*{TEACHER}'):
        ck.read_state_dict(tmp_path / 'nope.pth', TEACHER)
    with pytest.raises(ck.GFMCheckpointError, match='is a directory'):
        ck.read_state_dict(tmp_path, TEACHER)


def test_read_state_dict_malicious(tmp_path: Path) -> None:
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {'x': _Exploit(marker)}}, path)
    with pytest.raises(ck.GFMCheckpointError, match='refused to unpickle'):
        ck.read_state_dict(path, TEACHER)
    assert not marker.exists()


def _safetensors_with_header_length(path: Path, low_bytes: int, modulo: int) -> int:
    """Write a backbone file whose header length is ``low_bytes`` modulo *modulo*."""
    tensors = {'w': torch.ones(2)}
    ck.save_backbone(tensors, path, metadata={'pad': ''})
    n = int.from_bytes(path.read_bytes()[:8], 'little')
    # the header is padded to 8 bytes, so growing the metadata by d (multiple of 8) adds d
    ck.save_backbone(tensors, path, metadata={'pad': 'x' * ((low_bytes - n) % modulo)})
    return int.from_bytes(path.read_bytes()[:8], 'little')


@pytest.mark.parametrize(
    ('low_bytes', 'modulo', 'looks_like'),
    [
        (0x80, 0x100, 'pickle'),  # first byte 0x80
        (0x0280, 0x10000, 'pickle protocol 2'),  # b'\x80\x02': a legacy torch file
        (0x0580, 0x10000, 'pickle protocol 5'),
        (0x50, 0x100, 'zip'),  # first byte 'P'
        (0x4B50, 0x10000, 'zip'),  # b'PK'
    ],
)
def test_sniff_safetensors_whatever_the_header_length(
    low_bytes: int, modulo: int, looks_like: str, tmp_path: Path
) -> None:
    path = tmp_path / 'b.safetensors'
    n = _safetensors_with_header_length(path, low_bytes, modulo)
    assert n % modulo == low_bytes, looks_like
    assert ck.sniff_format(path) == 'safetensors'
    assert torch.equal(_student(path)['w'], torch.ones(2))


def test_truncated_safetensors_that_looks_like_a_pickle(tmp_path: Path) -> None:
    # why sniff_format parses the header itself: safetensors.safe_open refuses a truncated
    # file, which would then be taken for a legacy torch pickle (b'\x80\x02')
    path = tmp_path / 'b.safetensors'
    _safetensors_with_header_length(path, 0x0280, 0x10000)
    path.write_bytes(path.read_bytes()[:-4])
    assert path.read_bytes()[:2] == b'\x80\x02'
    with pytest.raises(safetensors.SafetensorError, match='incomplete metadata'):
        safetensors.safe_open(path, framework='pt')
    assert ck.sniff_format(path) == 'safetensors'
    with pytest.raises(ck.GFMCheckpointError, match='not a readable safetensors file'):
        ck.read_gfm_weights(path)


def test_sniff_safetensors_with_zip_magic(tmp_path: Path) -> None:
    # header length 0x04034B50 (64 MiB): the file starts with b'PK\x03\x04'
    path = tmp_path / 'b.safetensors'
    _safetensors_with_header_length(path, 0x04034B50, 1 << 32)
    assert path.read_bytes()[:4] == b'PK\x03\x04'
    assert ck.sniff_format(path) == 'safetensors'


@pytest.mark.parametrize(
    ('head', 'fmt'),
    [
        (b'PK\x03\x04rest', 'torch-zip'),
        (b'\x80\x02\x8a\x0a', 'torch-pickle'),
        (b'\x80\x05', 'torch-pickle'),
        (b'\x80\x06', None),
        (b'\x80', None),
        (b'', None),
        (b'{"a": 1}', None),
        ((2).to_bytes(8, 'little') + b'{}', 'safetensors'),
        ((3).to_bytes(8, 'little') + b'{}', None),  # length past the end
        ((2).to_bytes(8, 'little') + b'{]', None),  # not JSON
    ],
)
def test_sniff_format(head: bytes, fmt: str | None, tmp_path: Path) -> None:
    path = tmp_path / 'f'
    path.write_bytes(head)
    assert ck.sniff_format(path) == fmt


class TestHubBlob:
    def test_tampered_blob_refused(self, tmp_path: Path) -> None:
        from torchgeo_gfm.models.checkpoint import read_gfm_weights, verify_hub_blob

        blob = tmp_path / 'models--torchgeo--gfm' / 'blobs' / ('0' * 64)
        blob.parent.mkdir(parents=True)
        blob.write_bytes(b'not what the Hub published')
        link = tmp_path / 'gfm.pth'
        link.symlink_to(blob)
        with pytest.raises(ck.GFMCheckpointError, match='does not match the SHA-256'):
            verify_hub_blob(link)
        with pytest.raises(ck.GFMCheckpointError, match='does not match the SHA-256'):
            read_gfm_weights(link)

    def test_intact_blob_and_other_files_pass(self, tmp_path: Path) -> None:
        import hashlib

        from torchgeo_gfm.models.checkpoint import verify_hub_blob

        content = b'published bytes'
        blob = tmp_path / 'blobs' / hashlib.sha256(content).hexdigest()
        blob.parent.mkdir()
        blob.write_bytes(content)
        verify_hub_blob(blob)
        other = tmp_path / 'gfm.pth'
        other.write_bytes(b'anything')
        verify_hub_blob(other)
