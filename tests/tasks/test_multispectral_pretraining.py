# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Continual pretraining with a sensor: more bands, true colour for the teacher, checks."""

import hashlib
import math
from collections.abc import Callable
from pathlib import Path

import pytest
import timm
import torch
from lightning.pytorch import LightningDataModule
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torchvision.models import Weights, WeightsEnum

from tests.tasks.test_continual_pretraining import (
    SIZE,
    STUDENT,
    RandomDataModule,
    make_task,
    trainer,
)
from torchgeo_gfm.models.checkpoint import save_backbone
from torchgeo_gfm.sensors import SensorError, get_sensor
from torchgeo_gfm.tasks import ContinualPretraining, pretraining_weights

S2 = get_sensor('s2_l1c')


def uint16_images(n: int, bands: int = 13, seed: int = 0) -> Tensor:
    """Sentinel-2-like stored values (DN, reflectance x 10000) as float."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 10000, (n, bands, SIZE, SIZE), generator=gen).float()


class SensorImages(Dataset[dict[str, Tensor]]):
    def __init__(self, bands: int) -> None:
        self.images = uint16_images(4, bands)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return {'image': self.images[i]}


class SensorDataModule(LightningDataModule):
    """Un-normalised stored values and the sensor, as the multispectral datamodules."""

    def __init__(self, sensor: str = 's2_l1c', bands: int = 13) -> None:
        super().__init__()
        self.sensor = get_sensor(sensor)
        self.bands = bands
        self.batch_size = 2  # the lr scaling reads it

    def train_dataloader(self) -> DataLoader[dict[str, Tensor]]:
        return DataLoader(SensorImages(self.bands), batch_size=self.batch_size)


# ------------------------------------------------------------------ exactness
def test_rgb_sensor_loss_equals_rgb_path() -> None:
    torch.manual_seed(0)
    today = make_task().eval()
    sensor = make_task(sensor='rgb').eval()
    sensor.load_state_dict(today.state_dict())
    gen = torch.Generator().manual_seed(0)
    raw = torch.randint(0, 256, (3, 3, SIZE, SIZE), generator=gen).float()
    # what an RGB datamodule gives today: x / 255, then ImageNet normalisation
    mean = torch.tensor(IMAGENET_DEFAULT_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_DEFAULT_STD).view(1, 3, 1, 1)
    normalised = (raw / 255 - mean) / std
    mask = today.draw_mask(raw, torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = sensor.compute_loss(raw, mask)
        theirs = today.compute_loss(normalised, mask)
    # (x - 255 m) / (255 s) and (x / 255 - m) / s round differently in float32: inputs
    # differ by a few ulps (measured <= 5e-7 absolute on values of ~2). The losses are
    # means over ~10^4 pixels, so the roundings average out: measured equal to the bit for
    # loss and loss_mim (seeds 0-2), loss_distill (a cosine, bounded by 1, near 0 for
    # random nets: compared absolutely) within 3e-8. A wrong statistic or band order
    # changes them by > 1e-2.
    for key in ('loss', 'loss_mim'):
        torch.testing.assert_close(ours[key], theirs[key], rtol=1e-6, atol=0)
    torch.testing.assert_close(
        ours['loss_distill'], theirs['loss_distill'], rtol=0, atol=1e-6
    )
    student, teacher = sensor.model_inputs(raw)
    assert (student - normalised).abs().max() < 1e-5
    assert (teacher - normalised).abs().max() < 1e-5


# ------------------------------------------------------------------ student
def test_student_band_rule_from_rgb_and_multispectral_weights(tmp_path: Path) -> None:
    rgb = timm.create_model('gfm_swin_base', num_classes=0, **STUDENT)
    rgb_file = tmp_path / 'rgb.safetensors'
    save_backbone(rgb.state_dict(), rgb_file)
    task = make_task(sensor='s2', weights=str(rgb_file))
    weight = task.model.student.patch_embed.proj.weight
    assert weight.shape[1] == 13
    rgb_weight = rgb.patch_embed.proj.weight
    torch.testing.assert_close(weight[:, list(S2.rgb)], rgb_weight)
    others = [i for i in range(13) if i not in S2.rgb]
    assert not weight[:, others].any()
    # a 13-band checkpoint of the same sensor loads as it is
    ms_file = tmp_path / 'ms.safetensors'
    with torch.no_grad():
        task.model.student.patch_embed.proj.weight.normal_()
    save_backbone(task.model.student.state_dict(), ms_file)
    again = make_task(sensor='s2', weights=str(ms_file))
    torch.testing.assert_close(
        again.model.student.patch_embed.proj.weight,
        task.model.student.patch_embed.proj.weight,
    )


def test_reconstructs_all_bands_normalised() -> None:
    task = make_task(sensor='s2')
    assert task.model.decoder[0].out_channels == 32 * 32 * 13
    raw = uint16_images(2)
    mask = task.draw_mask(raw)
    out = task.compute_loss(raw, mask)
    student, teacher = task.model_inputs(raw)
    torch.testing.assert_close(student, S2.normalize(raw))
    true_colour = S2.true_colour(raw)
    mean = torch.tensor(IMAGENET_DEFAULT_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_DEFAULT_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(teacher, (true_colour - mean) / std)
    rec, _, _ = task.model(student, mask, teacher)
    assert rec.shape == raw.shape
    loss_mim = task.compute_loss(raw, mask)['loss_mim']
    torch.testing.assert_close(out['loss_mim'], loss_mim)
    out['loss'].backward()
    assert task.model.student.patch_embed.proj.weight.grad is not None


def test_hparams_record_the_sensor() -> None:
    task = make_task(sensor='s2')
    assert task.hparams['sensor'] == S2.to_dict()
    assert task.hparams['in_channels'] == 13
    assert make_task().hparams['in_channels'] == 3
    # the recorded dict rebuilds the task (as load_from_checkpoint does)
    again = ContinualPretraining(**dict(task.hparams), teacher_weights=None)
    assert again.sensor == S2


def test_in_channels_must_match_the_sensor() -> None:
    with pytest.raises(ValueError, match='in_channels=4 but sensor s2_l1c has 13'):
        make_task(sensor='s2', in_channels=4)


# ------------------------------------------------------------------ teachers
@pytest.mark.parametrize(
    ('teacher', 'stage', 'width'),
    [('test_resnet', None, 96), ('test_resnet', 3, 192), ('test_vit', 2, 64)],
)
def test_timm_teacher_takes_the_bands(
    teacher: str, stage: int | None, width: int
) -> None:
    task = make_task(
        sensor='s2',
        teacher=teacher,
        teacher_kwargs={'in_chans': 13},
        teacher_input='bands',
        teacher_stage=stage,
        teacher_size=64,
    )
    assert task.model.projector.out_features == width
    raw = uint16_images(2)
    _, seen = task.model_inputs(raw)
    torch.testing.assert_close(seen, S2.normalize(raw))
    out = task.compute_loss(raw, task.draw_mask(raw))
    assert torch.isfinite(out['loss'])
    out['loss'].backward()
    assert all(p.grad is None for p in task.model.teacher.parameters())


def test_teacher_that_cannot_take_the_bands() -> None:
    with pytest.raises(ValueError, match='takes 3 bands but is given 13'):
        make_task(
            sensor='s2',
            teacher='test_resnet',
            teacher_kwargs=None,
            teacher_input='bands',
        )
    with pytest.raises(ValueError, match='takes 13 bands but is given 3'):
        make_task(sensor='s2', teacher='test_resnet', teacher_kwargs={'in_chans': 13})


def fake_weights(
    tmp_path: Path, serve: Callable[[Path | str], str], in_chans: int
) -> WeightsEnum:
    """A TorchGeo-style weights enum member whose file a 127.0.0.1 server holds."""
    torch.manual_seed(0)
    model = timm.create_model('resnet18', in_chans=in_chans)
    folder = tmp_path / 'served'
    folder.mkdir()
    tmp = folder / 'weights.pth'
    torch.save(model.state_dict(), tmp)
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()[:8]
    name = f'resnet18_fake-{digest}.pth'  # torchvision checks this hash prefix
    tmp.rename(folder / name)
    meta = {'in_chans': in_chans, 'model': 'resnet18'}
    weights = Weights(url=serve(folder) + name, transforms=None, meta=meta)
    enum = WeightsEnum('Fake_Weights', [('S2', weights)])  # type: ignore[call-overload]
    member: WeightsEnum = enum.S2
    return member


@pytest.mark.slow  # ~8 s: a ResNet-18 file written, hashed, served and loaded
def test_torchgeo_weights_teacher(
    tmp_path: Path,
    serve_directory: Callable[[Path | str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    member = fake_weights(tmp_path, serve_directory, 13)
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    names: list[str] = []

    def get_weight(name: str) -> WeightsEnum:
        names.append(name)
        return member

    monkeypatch.setattr(pretraining_weights, 'get_weight', get_weight)
    with pytest.raises(ValueError, match='takes 13 bands but is given 3'):
        make_task(sensor='s2', teacher='Fake_Weights.S2', teacher_kwargs=None)
    assert not (tmp_path / 'torch').exists()  # refused before any download
    task = make_task(
        sensor='s2',
        teacher='Fake_Weights.S2',
        teacher_weights=True,
        teacher_kwargs=None,
        teacher_input='bands',
        teacher_size=64,
    )
    assert names == ['Fake_Weights.S2', 'Fake_Weights.S2']
    served = torch.load(next((tmp_path / 'served').glob('*.pth')), weights_only=True)
    torch.testing.assert_close(task.model.teacher.conv1.weight, served['conv1.weight'])
    assert task.model.projector.out_features == 512
    raw = uint16_images(2)
    assert torch.isfinite(task.compute_loss(raw, task.draw_mask(raw))['loss'])


def test_torchgeo_weights_teacher_unknown_name() -> None:
    with pytest.raises(ValueError, match='not a TorchGeo weights name'):
        make_task(sensor='s2', teacher='Nope_Weights.S2', teacher_kwargs=None)


# ------------------------------------------------------------------ batches
def test_batch_band_count_names_both_and_the_datamodule(tmp_path: Path) -> None:
    task = make_task(sensor='s2')
    dm = RandomDataModule(chans=12)
    with pytest.raises(
        SensorError, match='RandomDataModule has 12 bands, sensor s2_l1c has 13'
    ):
        trainer(tmp_path).fit(task, dm)


def test_uint16_batch_without_a_sensor(tmp_path: Path) -> None:
    class Uint16(RandomDataModule):
        def train_dataloader(self) -> DataLoader[dict[str, Tensor]]:
            return DataLoader(SensorImages(3), batch_size=2)

    with pytest.raises(ValueError, match='Pass sensor='):
        trainer(tmp_path).fit(make_task(), Uint16())


@pytest.mark.parametrize(
    ('task_sensor', 'dm_sensor', 'match'),
    [(None, 's2_l1c', "pass sensor='s2_l1c'"), ('s2_l2a', 's2_l1c', 'same sensor')],
)
def test_datamodule_sensor_must_match(
    tmp_path: Path, task_sensor: str | None, dm_sensor: str, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        trainer(tmp_path).fit(
            make_task(sensor=task_sensor), SensorDataModule(dm_sensor)
        )


def test_nan_batch_stops_training(tmp_path: Path) -> None:
    class WithNaN(SensorDataModule):
        def train_dataloader(self) -> DataLoader[dict[str, Tensor]]:
            data = SensorImages(13)
            data.images[:, 4] = math.nan
            return DataLoader(data, batch_size=2)

    with pytest.raises(FloatingPointError, match='Non-finite GFM loss'):
        trainer(tmp_path).fit(make_task(sensor='s2'), WithNaN())


# ------------------------------------------------------------------ fit
@pytest.mark.slow  # ~13 s: two steps, a figure, a checkpoint and its reload
def test_fit_multispectral_student_with_rgb_teacher(tmp_path: Path) -> None:
    task = make_task(sensor='s2_l1c', plot_every_n_steps=1)
    before = task.model.student.patch_embed.proj.weight.detach().clone()
    t = trainer(tmp_path, max_steps=2, logger=True)
    t.fit(task, SensorDataModule())
    assert t.global_step == 2
    after = task.model.student.patch_embed.proj.weight
    assert not torch.equal(before, after)
    assert list((tmp_path / 'lightning_logs').rglob('reconstructions/*.png'))
    path = tmp_path / 'last.ckpt'
    t.save_checkpoint(path)
    ckpt = torch.load(path, weights_only=False)
    assert ckpt['hyper_parameters']['sensor'] == S2.to_dict()
    assert ckpt['hyper_parameters']['in_channels'] == 13
    resumed = ContinualPretraining.load_from_checkpoint(path, teacher_weights=None)
    torch.testing.assert_close(resumed.model.student.patch_embed.proj.weight, after)
    assert resumed.sensor == S2
