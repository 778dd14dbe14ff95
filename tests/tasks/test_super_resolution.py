# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

import math
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from lightning.pytorch import Trainer
from lightning.pytorch.loggers import CSVLogger

import torchgeo_gfm.models  # noqa: F401  (registers gfm_swin_base)
from torchgeo_gfm.datamodules import SpaceNet2SRDataModule
from torchgeo_gfm.models.super_resolution import SuperResolutionModel
from torchgeo_gfm.tasks import SuperResolution
from torchgeo_gfm.transforms import random_crop, random_flip_rotate

DATA = Path(__file__).parents[1] / 'data' / 'spacenet2_sr'


def ssim_numpy(x: np.ndarray, y: np.ndarray) -> float:
    """SSIM of Wang et al. (2004): 11x11 Gaussian window, sigma 1.5; borders
    reflect-padded (torchmetrics' convention, where skimage crops them instead)."""
    g = np.exp(-((np.arange(11) - 5) ** 2) / (2 * 1.5**2))
    g /= g.sum()

    def filt(a: np.ndarray) -> np.ndarray:
        a = np.apply_along_axis(lambda r: np.convolve(r, g, 'valid'), -1, a)
        return np.apply_along_axis(lambda c: np.convolve(c, g, 'valid'), -2, a)

    pad = ((0, 0), (0, 0), (5, 5), (5, 5))
    x, y = np.pad(x, pad, mode='reflect'), np.pad(y, pad, mode='reflect')
    c1, c2 = 0.01**2, 0.03**2
    mx, my = filt(x), filt(y)
    sxx, syy, sxy = filt(x * x) - mx**2, filt(y * y) - my**2, filt(x * y) - mx * my
    ssim = ((2 * mx * my + c1) * (2 * sxy + c2)) / (
        (mx**2 + my**2 + c1) * (sxx + syy + c2)
    )
    return float(ssim.mean())


def tiny_task(**kwargs: object) -> SuperResolution:
    args: dict[str, object] = {'backbone': 'test_resnet', 'head_channels': 8}
    args.update(kwargs)
    return SuperResolution(**args)  # type: ignore[arg-type]


class TestSuperResolution:
    def test_psnr_known(self) -> None:
        task = tiny_task()
        target = torch.zeros(2, 3, 16, 16)
        task.test_metrics.update(torch.full_like(target, 0.1), target)
        # MSE 0.01 over data range 1 -> 20 dB
        assert task.test_metrics.compute()['test_PSNR'].item() == pytest.approx(20.0)

    def test_metrics_match_independent(self) -> None:
        task = tiny_task()
        rng = np.random.default_rng(0)
        target = rng.random((2, 3, 32, 32))
        pred = np.clip(target + rng.normal(0, 0.1, target.shape), 0, 1)
        task.val_metrics.update(
            torch.tensor(pred).float(), torch.tensor(target).float()
        )
        out = task.val_metrics.compute()
        mse = np.mean((pred - target) ** 2)
        assert out['val_PSNR'].item() == pytest.approx(
            10 * math.log10(1 / mse), rel=1e-4
        )
        assert out['val_SSIM'].item() == pytest.approx(
            ssim_numpy(pred, target), abs=1e-4
        )

    @pytest.mark.parametrize(
        ('backbone', 'kwargs'),
        [('test_resnet', {}), ('gfm_swin_base', {'depths': (1, 1, 1, 1)})],
    )
    def test_model_shapes(self, backbone: str, kwargs: dict[str, object]) -> None:
        # NCHW (ResNet) and NHWC (Swin, shallow for speed) backbones
        net = timm.create_model(backbone, num_classes=0, in_chans=8, **kwargs)
        model = SuperResolutionModel(net, in_channels=8, out_channels=3, scale=4)
        x = torch.rand(2, 8, 41, 37)  # odd sizes: padded inside, cropped back
        assert model(x).shape == (2, 3, 164, 148)

    def test_predict_target_resizes(self) -> None:
        task = tiny_task().eval()
        out = task.predict_target(torch.rand(1, 8, 16, 16), (60, 62))
        assert out.shape == (1, 8, 60, 62)

    def test_losses(self) -> None:
        assert isinstance(tiny_task(loss='l2').criterion, torch.nn.MSELoss)
        with pytest.raises(ValueError, match="'l1' or 'l2'"):
            tiny_task(loss='huber')

    def test_weights_and_freeze(self, tmp_path: Path) -> None:
        task = tiny_task(freeze_backbone=True)
        assert not any(p.requires_grad for p in task.model.backbone.parameters())
        assert all(p.requires_grad for p in task.model.head.parameters())
        path = tmp_path / 'backbone.pth'
        torch.save(task.model.backbone.state_dict(), path)
        loaded = tiny_task(weights=str(path))
        for a, b in zip(
            task.model.backbone.state_dict().values(),
            loaded.model.backbone.state_dict().values(),
        ):
            assert torch.equal(a, b)

    def test_plot(self) -> None:
        task = tiny_task(out_channels=3)
        fig = task.plot(
            torch.rand(8, 8, 8), torch.rand(3, 32, 32), torch.rand(3, 32, 32)
        )
        assert len(fig.axes) == 3

    @pytest.mark.slow
    def test_fit_on_spacenet2(self, tmp_path: Path) -> None:
        dm = SpaceNet2SRDataModule(
            root=DATA, aois=[2], batch_size=2, patch_size=16, val_split_pct=0.2
        )
        task = tiny_task()
        trainer = Trainer(
            max_steps=2,
            limit_val_batches=1,
            limit_test_batches=1,
            logger=CSVLogger(tmp_path),
            enable_checkpointing=False,
            enable_progress_bar=False,
            default_root_dir=tmp_path,
        )
        trainer.fit(task, datamodule=dm)
        figures = list(Path(trainer.logger.log_dir).glob('figures/*.png'))  # type: ignore[union-attr, arg-type]
        # one figure per validation (after each 1-step epoch), none for the sanity check
        assert sorted(f.name for f in figures) == [
            'val_super_resolution_0000001.png',
            'val_super_resolution_0000002.png',
        ]
        trainer.test(task, datamodule=dm)
        assert 'test_PSNR' in trainer.callback_metrics
        assert 'test_SSIM' in trainer.callback_metrics
        batch = next(iter(dm.val_dataloader()))
        out = task.eval().predict_step(batch, 0)
        assert out.shape == (1, 8, 652, 652)
        assert 0 <= out.min()
        assert out.max() <= 1


class TestSpaceNet2SR:
    def test_datamodule(self) -> None:
        dm = SpaceNet2SRDataModule(
            root=DATA, aois=[2], target='RGB-PanSharpen', val_split_pct=0.2
        )
        dm.setup('fit')
        sample = dm.val_dataset[0]  # type: ignore[index]
        assert sample['image'].shape == (8, 163, 163)
        assert sample['target'].shape == (3, 652, 652)
        assert 0 <= sample['image'].min()
        assert sample['target'].max() <= 1
        sample['prediction'] = sample['target']
        assert len(dm.plot(sample).axes) == 3

    def test_crop_and_augment_stay_aligned(self) -> None:
        # target = image upsampled 4x: crops, flips and rotations must keep that
        image = torch.rand(3, 2, 40, 40)
        batch = {
            'image': image,
            'target': image.repeat_interleave(4, -1).repeat_interleave(4, -2),
        }
        out = random_flip_rotate(
            random_crop(batch, 10, torch.Generator().manual_seed(1))
        )
        assert out['image'].shape == (3, 2, 10, 10)
        assert out['target'].shape == (3, 2, 40, 40)
        assert torch.equal(out['target'][..., ::4, ::4], out['image'])
        assert random_crop(batch, 64) is batch

    def test_mismatched_products(self, tmp_path: Path) -> None:
        import shutil

        # SpaceNet2's test split has no labels to align the products by
        test = tmp_path / 'SN2_buildings' / 'test'
        shutil.copytree(DATA / 'SN2_buildings' / 'train', test)
        next((test / 'AOI_2_Vegas' / 'MUL-PanSharpen').iterdir()).unlink()
        from torchgeo_gfm.datasets import SpaceNet2SuperResolution

        with pytest.raises(ValueError, match='chips differ'):
            SpaceNet2SuperResolution(tmp_path, split='test', aois=[2])
