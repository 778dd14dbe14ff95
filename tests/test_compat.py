# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""torchgeo_gfm._compat: each entry still finds its private name and still has its effect.

A failure here means an installed TorchGeo or litdata moved or changed a private name a
workaround relies on: the error says which entry and which upstream patch.
"""

import signal
from typing import Any

import matplotlib.pyplot as plt
import pytest
import torch
from lightning.pytorch import Trainer
from matplotlib.figure import Figure
from torch.utils.data import Dataset
from torchgeo.datamodules import NonGeoDataModule
from torchgeo.datasets.utils import Sample
from torchgeo.tasks import ChangeDetection

from torchgeo_gfm import _compat
from torchgeo_gfm._compat import CompatError, Verified

ENTRIES = [
    _compat.TORCHGEO_REGISTRY,
    _compat.TORCHGEO_FIGURES,
    _compat.LITDATA_HTTP,
    _compat.LITDATA_SIGINT,
]


@pytest.mark.parametrize('verified', ENTRIES, ids=str)
def test_installed_version_is_verified(verified: Verified) -> None:
    verified.check('test')  # raises CompatError outside the declared range
    assert verified.patch.startswith('upstream/')


def test_version_outside_the_range_fails_loudly() -> None:
    verified = Verified('torchgeo', '0.11', '0.12', 'upstream/torchgeo/x.patch')
    with pytest.raises(CompatError, match=r'torchgeo>=0.11,<0.12.*x\.patch'):
        verified.check('an entry')


# 1. GFM in TorchGeo's model registry


def test_registry_entry() -> None:
    from torchgeo.models import api, get_model_weights, get_weight

    from torchgeo_gfm.models import GFM_Weights, gfm_swin_b

    assert api._model['gfm_swin_b'] is gfm_swin_b
    assert api._model_weights[gfm_swin_b] is GFM_Weights
    assert get_weight('GFM_Weights.GEOPILE_RGB_GFM') is GFM_Weights.GEOPILE_RGB_GFM
    assert get_model_weights('gfm_swin_b') is GFM_Weights


def test_registry_moved(monkeypatch: pytest.MonkeyPatch) -> None:
    from torchgeo.models import api

    from torchgeo_gfm.models import GFM_Weights, gfm_swin_b

    monkeypatch.setattr(api, '_model', [])
    with pytest.raises(
        CompatError, match=r'_model/_model_weights are gone.*gfm-weights'
    ):
        _compat.register_torchgeo_model('gfm_swin_b', gfm_swin_b, GFM_Weights)


# 2. ChangeDetection's validation step without TorchGeo's figures


class _ChangeDataset(Dataset[Sample]):
    def __len__(self) -> int:
        return 2

    def __getitem__(self, index: int) -> Sample:
        return {
            'image': torch.rand(2, 3, 32, 32),
            'mask': torch.randint(0, 2, (1, 32, 32)),
        }

    def plot(self, sample: Sample) -> Figure:
        return plt.figure()


class _ChangeDataModule(NonGeoDataModule):
    def __init__(self) -> None:
        super().__init__(_ChangeDataset, batch_size=2)
        self.aug = self.unchanged  # [B, T, C, H, W]: the default 2-D aug refuses it

    def unchanged(self, batch: Sample) -> Sample:
        return batch

    def setup(self, stage: str) -> None:
        self.val_dataset = self.dataset = _ChangeDataset()


class _StepWithoutFigures(ChangeDetection):
    def validation_step(self, batch: Sample, batch_idx: int, *args: Any) -> None:
        _compat.change_detection_step(self, batch, batch_idx, 'val')


def _validate(task: ChangeDetection) -> None:
    # fast_dev_run's DummyLogger "takes" figures, as TensorBoard does
    trainer = Trainer(
        accelerator='cpu',
        fast_dev_run=True,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.validate(task, datamodule=_ChangeDataModule())


def test_change_detection_step_skips_the_figures() -> None:
    kwargs: dict[str, Any] = {
        'model': 'unet',
        'backbone': 'resnet18',
        'in_channels': 3,
        'task': 'binary',
    }
    # still needed: TorchGeo's own figure code fails on this Kornia
    with pytest.raises(ValueError, match='same number of frames'):
        _validate(ChangeDetection(**kwargs))
    _validate(_StepWithoutFigures(**kwargs))


def test_change_detection_step_moved(monkeypatch: pytest.MonkeyPatch) -> None:
    def renamed(self: object, batch: Sample, index: int, stage: str) -> None:
        pass

    monkeypatch.setattr(ChangeDetection, '_shared_step', renamed)
    _compat._checked_shared_step.cache_clear()
    try:
        with pytest.raises(CompatError, match=r'_shared_step.*figure-batches'):
            _compat.change_detection_step(None, {}, 0, 'val')  # type: ignore[arg-type]
    finally:
        _compat._checked_shared_step.cache_clear()


# 3. litdata's obstore client reaches http:// object storage
#    (the uploads and downloads themselves: tests/streaming, against a 127.0.0.1 server)


def test_litdata_allow_http(monkeypatch: pytest.MonkeyPatch) -> None:
    from litdata.streaming import downloader

    options = {'timeout': '30s'}
    monkeypatch.setattr(downloader, '_OBSTORE_CLIENT_OPTIONS', options)
    _compat.litdata_allow_http()
    assert options == {'timeout': '30s', 'allow_http': 'true'}


def test_litdata_allow_http_moved(monkeypatch: pytest.MonkeyPatch) -> None:
    from litdata.streaming import downloader

    monkeypatch.delattr(downloader, '_OBSTORE_CLIENT_OPTIONS')
    with pytest.raises(CompatError, match=r'_OBSTORE_CLIENT_OPTIONS is gone.*obstore'):
        _compat.litdata_allow_http()


# 4. Ctrl-C during litdata's optimize stays the caller's
#    (a real Ctrl-C during `torchgeo-gfm shard`: tests/streaming/test_shards.py)


def test_litdata_keeps_off_sigint() -> None:
    from litdata.processing import data_processor

    def handler(signum: int, frame: object) -> None:
        pass

    before = signal.getsignal(signal.SIGINT)
    usr1 = signal.getsignal(signal.SIGUSR1)
    try:
        with _compat.litdata_keeps_off_sigint():
            # what DataProcessor.run does: SIGINT is left alone, the rest passes through
            data_processor.signal.signal(data_processor.signal.SIGINT, handler)
            data_processor.signal.signal(data_processor.signal.SIGUSR1, handler)
            assert signal.getsignal(signal.SIGINT) is before
            assert signal.getsignal(signal.SIGUSR1) is handler
        assert data_processor.signal is signal
    finally:
        signal.signal(signal.SIGUSR1, usr1)


def test_litdata_keeps_off_sigint_moved(monkeypatch: pytest.MonkeyPatch) -> None:
    from litdata.processing import data_processor

    monkeypatch.setattr(data_processor, 'signal', object())
    with (
        pytest.raises(CompatError, match=r'not the signal module.*optimize-sigint'),
        _compat.litdata_keeps_off_sigint(),
    ):
        pass
