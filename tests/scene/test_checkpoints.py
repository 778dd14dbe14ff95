# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Checkpoints that say what they are, read once, import nothing unexpected."""

import math
import pickle
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import safetensors.torch
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torchgeo.tasks import SemanticSegmentation

from tests.scene.helpers import WHU_DATAMODULE, save_checkpoint
from torchgeo_gfm.datamodules import WHUBuildingDataModule
from torchgeo_gfm.scene import SceneError, load_backbone_for_embedding, load_predictor
from torchgeo_gfm.scene import predictor as module
from torchgeo_gfm.scene.checkpoints import TRUSTED_ENV
from torchgeo_gfm.scene.normalisation import per_band
from torchgeo_gfm.tasks.inference import INFERENCE_KEY, inference_metadata

Checkpoints = Callable[[str], Path]
#: a denormal (subnormal) float32
DENORMAL = 1e-40
TINY = torch.finfo(torch.float32).tiny
BAD_STD = [[math.nan], [math.inf], [-math.inf], [0.0], [-1.0], [DENORMAL], [1e39]]
BAD_MEAN = [[math.nan], [math.inf], [1e39]]
BAD_LENGTH = [[1.0, 2.0], [1.0] * 4, [], [1.0] * 5]


def fcn(channels: int = 3) -> SemanticSegmentation:
    return SemanticSegmentation(
        model='fcn', in_channels=channels, num_classes=2, num_filters=2
    )


def with_metadata(tmp_path: Path, name: str = 'm.ckpt', **changes: Any) -> Path:
    """An FCN checkpoint with the metadata of a WHU Building run, *changes* applied."""
    task = fcn()
    meta = inference_metadata(task, WHUBuildingDataModule(root='nowhere'))
    assert meta is not None
    return save_checkpoint(task, tmp_path / name, metadata={**meta, **changes})


def content(path: Path) -> dict[str, Any]:
    return torch.load(path, weights_only=True)


def resave(path: Path, checkpoint: object) -> Path:
    torch.save(checkpoint, path)
    return path


# --- metadata ----------------------------------------------------------------


def test_metadata_says_what_it_is(tmp_path: Path) -> None:
    predictor = load_predictor(with_metadata(tmp_path))
    assert predictor.kind == 'segmentation'
    assert predictor.mode == 'multiclass'
    assert predictor.classes == ['background', 'building']
    assert predictor.bands == [0, 1, 2]
    assert predictor.mean.tolist() == pytest.approx([123.675, 116.28, 103.53])
    assert predictor.multiple == 1
    assert predictor.source.startswith('checkpoint metadata (torchgeo_gfm.datamodules.')


def test_metadata_works_away_from_everything(tmp_path: Path) -> None:
    # no datamodule hyper-parameters, no config.yaml: the metadata is enough
    path = with_metadata(tmp_path)
    assert 'datamodule_hyper_parameters' not in content(path)
    assert load_predictor(path).std.tolist() == pytest.approx([58.395, 57.12, 57.375])
    # given statistics still win
    assert load_predictor(path, mean=[1], std=[2]).mean.tolist() == [1.0, 1.0, 1.0]


def test_metadata_kind_wins_over_guessing(tmp_path: Path) -> None:
    with pytest.raises(SceneError, match='is a segmentation checkpoint'):
        load_predictor(with_metadata(tmp_path), kind='change')


@pytest.mark.parametrize(
    ('field', 'value', 'message'),
    [
        ('version', 99, 'newer than this torchgeo-gfm'),
        ('version', '1', 'expected a positive int'),
        ('kind', 'detection', 'expected one of'),
        ('kind', None, 'expected a str'),
        ('in_channels', 0, 'positive int'),
        ('in_channels', True, 'positive int'),
        ('in_channels', 4, 'metadata says 4 bands'),
        ('outputs', -1, 'positive int'),
        ('multiple', 2.5, 'positive int'),
        ('task', ['x'], 'expected a str'),
        ('mean', 'abc', 'expected a list'),
        ('classes', [1, 2], 'non-strings'),
        ('task', 'torchgeo.tasks.Classification', 'not a SemanticSegmentation'),
    ],
)
def test_damaged_metadata(tmp_path: Path, field: str, value: Any, message: str) -> None:
    with pytest.raises(SceneError, match=message):
        load_predictor(with_metadata(tmp_path, **{field: value}))


def test_metadata_not_a_dict(tmp_path: Path) -> None:
    path = with_metadata(tmp_path)
    checkpoint = content(path)
    for value in ([1, 2], 'x', 3):
        checkpoint[INFERENCE_KEY] = value
        with pytest.raises(SceneError, match=f'{INFERENCE_KEY} is a'):
            load_predictor(resave(path, checkpoint))


# --- statistics: metadata, datamodule_hyper_parameters, config.yaml, --mean/--std ---


def stats_cases() -> list[tuple[str, list[float]]]:
    return [('std', v) for v in BAD_STD + BAD_LENGTH] + [
        ('mean', v) for v in BAD_MEAN + BAD_LENGTH
    ]


@pytest.mark.parametrize(('name', 'values'), stats_cases())
def test_bad_statistics_in_metadata(
    tmp_path: Path, name: str, values: list[float]
) -> None:
    path = with_metadata(tmp_path, **{name: values})
    with pytest.raises(SceneError, match=rf'{INFERENCE_KEY} {name} \['):
        load_predictor(path)


@pytest.mark.parametrize(('name', 'values'), stats_cases())
def test_bad_statistics_in_datamodule_hyper_parameters(
    tmp_path: Path, name: str, values: list[float]
) -> None:
    stats = {'mean': [0.0], 'std': [1.0], name: values}
    path = save_checkpoint(fcn(), tmp_path / 'd.ckpt', stats)
    with pytest.raises(SceneError, match=rf'datamodule hyper_parameters {name} \['):
        load_predictor(path)


@pytest.mark.parametrize(('name', 'values'), stats_cases())
def test_bad_statistics_given(name: str, values: list[float], tmp_path: Path) -> None:
    path = with_metadata(tmp_path)
    stats = {'mean': [0.0], 'std': [1.0], name: values}
    with pytest.raises(SceneError, match=rf'--{name} \['):
        load_predictor(path, stats['mean'], stats['std'])


@pytest.mark.parametrize('values', BAD_STD[:6])
def test_bad_statistics_in_config_yaml(tmp_path: Path, values: list[float]) -> None:
    # a run's config.yaml naming a (trusted) datamodule whose std is bad
    task = fcn()
    run = tmp_path / 'run'
    (run / 'checkpoints').mkdir(parents=True)
    path = save_checkpoint(
        task,
        run / 'checkpoints' / 'x.ckpt',
        class_path='torchgeo.tasks.SemanticSegmentation',
    )
    config = {
        'model': {
            'class_path': 'torchgeo.tasks.SemanticSegmentation',
            'init_args': {'model': 'fcn', 'num_classes': 2, 'num_filters': 2},
        },
        'data': {
            'class_path': 'torchgeo.datamodules.ucmerced.UCMercedDataModule',
            'init_args': {'batch_size': 1},
        },
    }
    (run / 'config.yaml').write_text(yaml.safe_dump(config))
    assert load_predictor(path).std.tolist() == [255.0] * 3  # TorchGeo's default
    from torchgeo.datamodules import UCMercedDataModule

    original = UCMercedDataModule.std
    try:
        UCMercedDataModule.std = torch.tensor(values)
        with pytest.raises(SceneError, match=r'config\.yaml\).* std \['):
            load_predictor(path)
    finally:
        UCMercedDataModule.std = original


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.floats(width=32, allow_nan=False, allow_infinity=False),
        min_size=1,
        max_size=6,
    ),
    st.integers(1, 6),
)
def test_per_band_mean(values: list[float], channels: int) -> None:
    if len(values) in (1, channels):
        t = per_band(values, channels, 'mean')
        assert t.dtype == torch.float32
        assert t.tolist() == (values * channels if len(values) == 1 else values)
    elif len(values) != 2 * channels or values[:channels] != values[channels:]:
        with pytest.raises(SceneError, match=f'the model takes {channels} bands'):
            per_band(values, channels, 'mean')


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(width=32), min_size=3, max_size=3))
def test_per_band_std(values: list[float]) -> None:
    good = all(math.isfinite(v) and v >= TINY for v in values)
    if good:
        assert per_band(values, 3, '--std').tolist() == values
    else:
        with pytest.raises(SceneError, match='not normal floats > 0'):
            per_band(values, 3, '--std')


@pytest.mark.parametrize('values', [None, 'abc', {'a': 1}, ['x', 'y'], [[1, 2], [3]]])
def test_per_band_not_numbers(values: object) -> None:
    with pytest.raises(SceneError, match=r'not numbers|values, the model takes'):
        per_band(values, 3, 'model.ckpt: metadata std')


def test_per_band_change_detection_halves() -> None:
    assert per_band([1, 2, 3, 1, 2, 3], 3, 'mean').tolist() == [1, 2, 3]
    with pytest.raises(SceneError, match='6 values'):
        per_band([1, 2, 3, 4, 5, 6], 3, 'mean')


# --- weights -------------------------------------------------------------------


@pytest.mark.parametrize('bad', [math.nan, math.inf, -math.inf])
def test_non_finite_weights(tmp_path: Path, bad: float) -> None:
    path = with_metadata(tmp_path)
    checkpoint = content(path)
    names = list(checkpoint['state_dict'])
    checkpoint['state_dict'][names[2]][0] = bad
    checkpoint['state_dict'][names[4]][0] = bad
    with pytest.raises(SceneError, match=rf"weight '{names[2]}' holds NaN or Inf"):
        load_predictor(resave(path, checkpoint))


def test_weights_not_tensors(tmp_path: Path) -> None:
    path = with_metadata(tmp_path)
    checkpoint = content(path)
    checkpoint['state_dict']['model.last.weight'] = [1.0]
    with pytest.raises(
        SceneError, match=r"state_dict\['model.last.weight'\] is a list"
    ):
        load_predictor(resave(path, checkpoint))


def test_weights_of_another_shape(tmp_path: Path) -> None:
    path = with_metadata(tmp_path)
    checkpoint = content(path)
    checkpoint['state_dict']['model.last.weight'] = torch.zeros(7, 7)
    with pytest.raises(SceneError, match='cannot be rebuilt as a SemanticSegmentation'):
        load_predictor(resave(path, checkpoint))


# --- files and shapes --------------------------------------------------------------


class Payload:
    """Unpickling this creates *marker*: proof that code from the file ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), 'w'))


def test_files_that_are_not_checkpoints(tmp_path: Path) -> None:
    real = with_metadata(tmp_path)
    data = real.read_bytes()
    marker = tmp_path / 'ran'
    files: dict[str, tuple[bytes | Callable[[Path], object], str]] = {
        'empty': (b'', 'the file is empty'),
        'truncated': (
            data[: len(data) // 2],
            'cannot be read as a Lightning checkpoint',
        ),
        'text': (b'hello world\n', 'neither format'),
        'zip': (
            lambda p: zipfile.ZipFile(p, 'w').close(),
            'cannot be read as a Lightning checkpoint',
        ),
        'payload_zip': (
            lambda p: torch.save({'state_dict': Payload(marker)}, p),
            'nothing was run',
        ),
        'payload_pickle': (
            pickle.dumps({'state_dict': Payload(marker)}, protocol=2),
            'cannot be read as a Lightning checkpoint',
        ),
        'safetensors': (
            lambda p: safetensors.torch.save_file({'w': torch.zeros(1)}, p),
            'is a safetensors weights file',
        ),
    }
    for name, (make, message) in files.items():
        path = tmp_path / f'{name}.ckpt'
        if isinstance(make, bytes):
            path.write_bytes(make)
        else:
            make(path)
        with pytest.raises(SceneError, match=message) as error:
            load_predictor(path)
        assert str(path) in str(error.value), name
    assert not marker.exists()
    with pytest.raises(SceneError, match='no such file'):
        load_predictor(tmp_path / 'missing.ckpt')
    with pytest.raises(SceneError, match='is a folder'):
        load_predictor(tmp_path)


@pytest.mark.parametrize(
    ('value', 'message'),
    [
        ({}, r'no state_dict; keys \[\]'),
        ([], 'holds a list'),
        ([1, {'state_dict': {}}], 'holds a list'),
        (None, 'holds a NoneType'),
        (torch.zeros(3), 'holds a Tensor'),
        ('state_dict', 'holds a str'),
        ({'state_dict': {}}, 'no state_dict'),
        ({'state_dict': [1]}, 'no state_dict'),
        ({'model': {'w': torch.zeros(1)}, 'config': {}}, r'gfm\.pth'),
        ({'state_dict': {'w': torch.zeros(1)}, 'hyper_parameters': [1]}, 'are a list'),
        (
            {'state_dict': {'w': torch.zeros(1)}, 'hyper_parameters': {1: 2}},
            'are a dict',
        ),
        ({'state_dict': {'w': torch.zeros(1)}}, 'are not those of'),
    ],
)
def test_checkpoint_shapes(tmp_path: Path, value: object, message: str) -> None:
    path = resave(tmp_path / 'c.ckpt', value)
    with pytest.raises(SceneError, match=message):
        load_predictor(path)


def test_gfm_pretraining_checkpoint(tmp_path: Path) -> None:
    hparams = {'_class_path': 'torchgeo_gfm.tasks.ContinualPretraining', 'lr': 1e-4}
    path = resave(
        tmp_path / 'gfm.ckpt',
        {'state_dict': {'w': torch.zeros(1)}, 'hyper_parameters': hparams},
    )
    with pytest.raises(
        SceneError, match=r'tasks\.ContinualPretraining.*torchgeo-gfm embed'
    ):
        load_predictor(path)


def plain_values() -> st.SearchStrategy[Any]:
    leaves = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-5, 5),
        st.floats(allow_nan=True),
        st.text(max_size=8),
        st.builds(torch.zeros, st.integers(0, 3)),
    )
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3),
            st.dictionaries(st.text(max_size=6), inner, max_size=3),
        ),
        max_leaves=8,
    )


def checkpoint_like() -> st.SearchStrategy[Any]:
    keys = st.sampled_from(
        [
            'state_dict',
            'hyper_parameters',
            INFERENCE_KEY,
            'datamodule_hyper_parameters',
            'other',
        ]
    )
    return st.one_of(plain_values(), st.dictionaries(keys, plain_values(), max_size=5))


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(checkpoint_like())
def test_any_checkpoint_shape_is_a_clear_error(
    tmp_path: Path, checkpoint: object
) -> None:
    # never a library traceback, whatever the file holds
    path = resave(tmp_path / 'h.ckpt', checkpoint)
    with pytest.raises(SceneError, match=str(path)):
        load_predictor(path)


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    st.sampled_from(
        [
            *('version', 'kind', 'mode', 'task', 'in_channels', 'bands', 'mean'),
            *('std', 'classes', 'outputs', 'scale', 'multiple'),
        ]
    ),
    plain_values(),
)
@pytest.mark.slow
def test_any_metadata_value_is_accepted_or_clear(
    tmp_path: Path, field: str, value: object
) -> None:
    path = with_metadata(tmp_path, **{field: value})
    try:
        predictor = load_predictor(path)
    except SceneError as error:
        message = str(error)
    else:
        message = str(path)
        assert torch.isfinite(predictor.std).all()
        assert (predictor.std >= TINY).all()
    assert str(path) in message


# --- imports --------------------------------------------------------------------


@pytest.fixture
def evil(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A module on sys.path whose import writes a marker file."""
    marker = tmp_path / 'imported'
    (tmp_path / 'evilmod.py').write_text(
        f'open({str(marker)!r}, "w").close()\n\nclass Foo:\n    pass\n'
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv(TRUSTED_ENV, raising=False)
    yield marker
    sys.modules.pop('evilmod', None)


UNTRUSTED = [
    'evilmod.Foo',
    'this.Foo',
    'os.system',
    'subprocess.Popen',
    'torchgeo_gfmx.Foo',
    'torchgeox.tasks.Foo',
    'torchgeo',
    'torchgeo..tasks',
    '.torchgeo.tasks.X',
    'torchgeo.__builtins__.eval',
    'torchgeo.tasks.Foo bar',
]


@pytest.mark.parametrize('class_path', UNTRUSTED)
def test_untrusted_class_paths_are_never_imported(
    tmp_path: Path, evil: Path, class_path: str
) -> None:
    before = set(sys.modules)
    task = fcn()
    places = {
        'task': save_checkpoint(task, tmp_path / 't.ckpt', class_path=class_path),
        'metadata': with_metadata(tmp_path, 'm.ckpt', task=class_path),
        'datamodule': save_checkpoint(
            task, tmp_path / 'd.ckpt', {'_class_path': class_path}
        ),
    }
    for place, path in places.items():
        with pytest.raises(SceneError, match='outside the trusted packages') as error:
            load_predictor(path)
        assert class_path in str(error.value), place
        assert TRUSTED_ENV in str(error.value)
    # in the run's config.yaml
    run = tmp_path / 'run'
    (run / 'checkpoints').mkdir(parents=True)
    path = save_checkpoint(task, run / 'checkpoints' / 'c.ckpt')
    config = {
        'model': {'init_args': {'model': 'fcn', 'num_classes': 2, 'num_filters': 2}},
        'data': {'class_path': class_path},
    }
    (run / 'config.yaml').write_text(yaml.safe_dump(config))
    with pytest.raises(SceneError, match='outside the trusted packages'):
        load_predictor(path)
    assert not evil.exists()
    assert 'evilmod' not in sys.modules
    assert {'this', 'evilmod'}.isdisjoint(set(sys.modules) - before)


def test_trusted_packages_are_imported(
    tmp_path: Path, evil: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = save_checkpoint(fcn(), tmp_path / 't.ckpt', class_path='evilmod.Foo')
    # trusted by the caller: imported, then refused as not a task
    with pytest.raises(SceneError, match=r'is a checkpoint of evilmod\.Foo'):
        load_predictor(path, trusted=['evilmod'])
    assert evil.exists()
    evil.unlink()
    sys.modules.pop('evilmod')
    monkeypatch.setenv(TRUSTED_ENV, 'other, evilmod')
    with pytest.raises(SceneError, match=r'is a checkpoint of evilmod\.Foo'):
        load_predictor(path)
    assert evil.exists()


def test_trusted_but_missing(tmp_path: Path) -> None:
    path = save_checkpoint(fcn(), tmp_path / 't.ckpt', class_path='torchgeo.tasks.Nope')
    with pytest.raises(SceneError, match='cannot be imported; install'):
        load_predictor(path)


def test_lightning_instantiator_is_not_imported(tmp_path: Path) -> None:
    path = save_checkpoint(fcn(), tmp_path / 't.ckpt', WHU_DATAMODULE)
    checkpoint = content(path)
    checkpoint['hyper_parameters']['_instantiator'] = 'evilmod.instantiate'
    assert load_predictor(resave(path, checkpoint)).kind == 'segmentation'
    assert 'evilmod' not in sys.modules


# --- read once -------------------------------------------------------------------


def test_read_once(
    tmp_path: Path, checkpoints: Checkpoints, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[object] = []
    load = torch.load

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[0])
        assert kwargs.get('weights_only') is True
        return load(*args, **kwargs)

    path, unet = with_metadata(tmp_path), checkpoints('unet')
    monkeypatch.setattr(torch, 'load', counting)
    load_predictor(path)
    assert calls == [str(path)]
    calls.clear()
    load_predictor(unet)  # fallback path: still one read
    assert len(calls) == 1
    calls.clear()
    backbone = load_backbone_for_embedding(unet, 4, 3)
    assert len(calls) == 1
    assert backbone.name.startswith('backbone of')


def test_embed_safetensors_goes_to_gfm(tmp_path: Path) -> None:
    # a safetensors file is not read as a checkpoint: gfm_swin_b says what is wrong
    path = tmp_path / 'w.safetensors'
    safetensors.torch.save_file({'w': torch.zeros(1)}, path)
    with pytest.raises(SceneError, match='not usable as GFM weights'):
        load_backbone_for_embedding(path, 4, 3)


@pytest.mark.parametrize(
    ('name', 'new'),
    [
        ('read_checkpoint_file', 'checkpoints'),
        ('is_lightning_checkpoint', 'checkpoints'),
        ('trusted_modules', 'checkpoints'),
        ('TRUSTED_ENV', 'checkpoints'),
        ('TRUSTED_MODULES', 'checkpoints'),
        ('per_band', 'normalisation'),
        ('NAMED', 'normalisation'),
    ],
)
def test_moved_names_are_deprecated_aliases(name: str, new: str) -> None:
    import importlib

    target = importlib.import_module(f'torchgeo_gfm.scene.{new}')
    with pytest.warns(DeprecationWarning, match=f'scene.{new}.{name}'):
        assert getattr(module, name) is getattr(target, name)
    with pytest.raises(AttributeError, match='no attribute'):
        module.nothing_here  # noqa: B018
