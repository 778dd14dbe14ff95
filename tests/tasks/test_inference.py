# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""InferenceMetadata: what a checkpoint says about itself; checked resumes."""

import io
import pickle
import zipfile
from pathlib import Path
from typing import Any

import pytest
import safetensors.torch
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from lightning.pytorch import LightningDataModule, LightningModule, Trainer
from torchgeo.tasks import SemanticSegmentation

from tests.models.fake_data import TINY_SWIN, FakeDataModule
from torchgeo_gfm.datamodules import OSCDTiledDataModule, WHUBuildingDataModule
from torchgeo_gfm.models.checkpoint import GFMCheckpointError
from torchgeo_gfm.tasks import (
    FinetuneChangeDetection,
    FinetuneClassification,
    FinetuneSemanticSegmentation,
    FinetuneSuperResolution,
    InferenceMetadata,
    MultiLabelClassification,
)
from torchgeo_gfm.tasks.inference import (
    INFERENCE_KEY,
    INFERENCE_VERSION,
    inference_metadata,
)


def trainer(root: Path, *callbacks: Any) -> Trainer:
    return Trainer(
        accelerator='cpu',
        default_root_dir=root,
        max_steps=1,
        limit_train_batches=1,
        limit_val_batches=1,
        num_sanity_val_steps=0,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=list(callbacks),
    )


def fit_checkpoint(task: LightningModule, root: Path, *callbacks: Any) -> Path:
    """One training step of *task* on fake segmentation data; the checkpoint written."""
    trainer(root, *callbacks).fit(task, FakeDataModule('segmentation'))
    (path,) = root.rglob('*.ckpt')
    return path


def plain_segmentation() -> SemanticSegmentation:
    return SemanticSegmentation(model='fcn', num_classes=3, num_filters=2)


def test_torchgeo_task_with_the_callback(tmp_path: Path) -> None:
    path = fit_checkpoint(plain_segmentation(), tmp_path, InferenceMetadata())
    meta = torch.load(path, weights_only=True)[INFERENCE_KEY]
    assert meta == {
        'version': INFERENCE_VERSION,
        'kind': 'segmentation',
        'mode': 'multiclass',
        'task': 'torchgeo.tasks.segmentation.SemanticSegmentation',
        'in_channels': 3,
        'bands': [0, 1, 2],  # FakeDataModule's bands is a count, not names
        'mean': [0.0, 0.0, 0.0],  # TorchGeo's default normalisation, per band
        'std': [255.0, 255.0, 255.0],
        'classes': None,
        'outputs': 3,
        'scale': 1,
        'multiple': 1,  # fcn: no downsampling
        'datamodule': 'tests.models.fake_data.FakeDataModule',
        'sensor': None,  # an RGB datamodule of 0.1: its mean/std say it all
    }


def test_torchgeo_task_without_the_callback(tmp_path: Path) -> None:
    path = fit_checkpoint(plain_segmentation(), tmp_path)
    assert INFERENCE_KEY not in torch.load(path, weights_only=True)


def test_our_tasks_write_it_themselves_weights_only_too(tmp_path: Path) -> None:
    task = FinetuneSemanticSegmentation(
        model='unet',
        backbone=f'tu-{TINY_SWIN}',
        num_classes=3,
        layer_decay=1.0,
        warmup_epochs=0,
    )
    run = trainer(tmp_path)
    run.fit(task, FakeDataModule('segmentation', size=32))
    run.save_checkpoint(tmp_path / 'w.ckpt', weights_only=True)
    meta = torch.load(tmp_path / 'w.ckpt', weights_only=True)[INFERENCE_KEY]
    assert meta['task'] == 'torchgeo_gfm.tasks.finetune.FinetuneSemanticSegmentation'
    assert (meta['kind'], meta['multiple'], meta['std']) == (
        'segmentation',
        32,
        [255.0] * 3,
    )


@pytest.mark.parametrize(
    ('task', 'kind', 'mode', 'outputs', 'scale'),
    [
        (
            lambda: FinetuneClassification(
                model=TINY_SWIN, num_classes=5, mixup=0, cutmix=0
            ),
            'classification',
            'multiclass',
            5,
            1,
        ),
        (
            lambda: MultiLabelClassification(
                model=TINY_SWIN, task='multilabel', num_labels=4, loss='bce'
            ),
            'classification',
            'multilabel',
            4,
            1,
        ),
        (
            lambda: FinetuneChangeDetection(
                model='fcsiamdiff', backbone='tu-test_resnet', task='binary', loss='bce'
            ),
            'change',
            'binary',
            1,
            1,
        ),
        (
            lambda: FinetuneSuperResolution(
                backbone=TINY_SWIN, in_channels=3, out_channels=2, scale=2
            ),
            'super_resolution',
            'regression',
            2,
            2,
        ),
    ],
)
def test_kinds(task: Any, kind: str, mode: str, outputs: int, scale: int) -> None:
    meta = inference_metadata(task())
    assert meta is not None
    assert (meta['kind'], meta['mode'], meta['outputs'], meta['scale']) == (
        kind,
        mode,
        outputs,
        scale,
    )
    # without a datamodule nothing is invented
    assert meta['mean'] is meta['std'] is meta['classes'] is meta['datamodule'] is None


def test_not_a_task_for_the_engine() -> None:
    assert inference_metadata(LightningModule()) is None
    checkpoint: dict[str, Any] = {}
    InferenceMetadata().on_save_checkpoint(None, LightningModule(), checkpoint)  # type: ignore[arg-type]
    assert checkpoint == {}


def test_datamodule_names_and_statistics() -> None:
    task = FinetuneChangeDetection(
        model='fcsiamdiff', backbone='tu-test_resnet', task='binary', loss='bce'
    )
    oscd = OSCDTiledDataModule(root='nowhere', bands=['B04', 'B03', 'B02'])
    meta = inference_metadata(task, oscd)
    assert meta is not None
    assert meta['bands'] == ['B04', 'B03', 'B02']
    # statistics of the three bands, once (the datamodule repeats them per date)
    assert meta['mean'] == pytest.approx(oscd.mean.tolist())
    assert len(meta['std']) == 3
    whu = WHUBuildingDataModule(root='nowhere')
    segmentation = FinetuneSemanticSegmentation(
        model='unet', backbone='tu-test_resnet', task='binary', loss='bce'
    )
    meta = inference_metadata(segmentation, whu)
    assert meta is not None
    assert meta['classes'] == ['background', 'building']
    assert meta['mean'] == pytest.approx([123.675, 116.28, 103.53])
    assert all(type(v) is float for v in meta['mean'] + meta['std'])


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.floats(allow_nan=True, allow_infinity=True, width=32), min_size=1, max_size=8
    ),
    st.integers(1, 4),
)
def test_statistics_are_recorded_as_plain_floats(
    values: list[float], channels: int
) -> None:
    # whatever the datamodule holds is recorded as floats (checked when loaded)
    datamodule = FakeDataModule()
    datamodule.mean = torch.tensor(values)
    datamodule.std = torch.tensor(values)
    task = SemanticSegmentation(
        model='fcn', in_channels=channels, num_classes=2, num_filters=1
    )
    meta = inference_metadata(task, datamodule)
    assert meta is not None
    assert all(type(v) is float for v in meta['mean'])
    if len(values) == 1:
        assert len(meta['mean']) == channels
    buffer = io.BytesIO()
    torch.save(meta, buffer)
    buffer.seek(0)
    assert torch.load(buffer, weights_only=True).keys() == meta.keys()


# --- checkpoints to resume from ------------------------------------------------


class Payload:
    """Unpickling this creates *marker*: proof that code from the file ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), 'w'))


def payloads(tmp_path: Path) -> tuple[Path, list[Path]]:
    marker = tmp_path / 'ran'
    zip_payload = tmp_path / 'last.ckpt'
    torch.save({'state_dict': {}, 'x': Payload(marker)}, zip_payload)
    raw = tmp_path / 'raw.ckpt'
    raw.write_bytes(pickle.dumps({'state_dict': Payload(marker)}, protocol=2))
    return marker, [zip_payload, raw]


def resume(tmp_path: Path, ckpt: Path, task: LightningModule | None = None) -> None:
    run = trainer(tmp_path / 'resume', InferenceMetadata())
    run.fit(
        task or plain_segmentation(), FakeDataModule('segmentation'), ckpt_path=ckpt
    )


def test_resume_from_a_pickle_payload_runs_nothing(tmp_path: Path) -> None:
    marker, files = payloads(tmp_path)
    for path in files:
        with pytest.raises(GFMCheckpointError, match='nothing was run') as error:
            resume(tmp_path, path)
        assert f'--ckpt_path {path}' in str(error.value)
    assert not marker.exists()


def test_resume_from_foreign_files(tmp_path: Path) -> None:
    text = tmp_path / 'notes.ckpt'
    text.write_text('not a checkpoint')
    zipped = tmp_path / 'archive.ckpt'
    with zipfile.ZipFile(zipped, 'w') as z:
        z.writestr('readme.txt', 'hello')
    tensors = tmp_path / 'weights.ckpt'
    safetensors.torch.save_file({'w': torch.zeros(2)}, tensors)
    state_dict = tmp_path / 'state.ckpt'
    torch.save({'w': torch.zeros(2)}, state_dict)
    cases = [
        (text, 'neither format'),
        (zipped, 'not a readable torch checkpoint'),
        (tensors, 'without a state_dict'),
        (state_dict, 'without a state_dict'),
        (tmp_path / 'missing.ckpt', 'no such file'),
    ]
    for path, message in cases:
        with pytest.raises(GFMCheckpointError, match=message) as error:
            resume(tmp_path, path)
        assert str(path) in str(error.value)
        assert 'drop --ckpt_path' in str(error.value)


def test_resume_from_another_task(tmp_path: Path) -> None:
    other = FinetuneClassification(model=TINY_SWIN, num_classes=3, mixup=0, cutmix=0)
    path = tmp_path / 'other.ckpt'
    run = trainer(tmp_path)
    run.strategy.connect(other)
    run.save_checkpoint(path)
    with pytest.raises(
        GFMCheckpointError, match=r'written by .*FinetuneClassification'
    ):
        resume(tmp_path, path)


def test_resume_from_its_own_checkpoint(tmp_path: Path) -> None:
    path = fit_checkpoint(plain_segmentation(), tmp_path / 'first', InferenceMetadata())
    resume(tmp_path, path)  # no false refusal


def test_sensor_of_the_datamodule_or_the_task(tmp_path: Path) -> None:
    from torchgeo_gfm.sensors import get_sensor

    class Multispectral(
        LightningDataModule
    ):  # yields stored values, exposes its sensor
        sensor = get_sensor('s2')

    task = SemanticSegmentation(
        model='fcn', in_channels=13, num_classes=2, num_filters=2
    )
    meta = inference_metadata(task, Multispectral())
    assert meta is not None
    assert meta['sensor'] == get_sensor('s2_l1c').to_dict()
    torch.save(meta, tmp_path / 'm.pt')  # plain values: weights-only readable
    assert torch.load(tmp_path / 'm.pt', weights_only=True) == meta
    task.hparams['sensor'] = 's2_l2a'  # a task's own sensor comes first
    meta = inference_metadata(task, Multispectral())
    assert meta is not None
    assert meta['sensor']['name'] == 's2_l2a'
