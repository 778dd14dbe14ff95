# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""``torchgeo-gfm predict`` on checkpoints written by a real ``torchgeo fit`` run.

The other scene tests simulate what ``torchgeo fit`` records. These run it: a shipped
fine-tuning config with the overrides of tests/configs (a tiny Swin in place of Swin-B, the
fake data of tests/data, no download), one training step, then predict with the checkpoint
Lightning wrote, as a user would.
"""

import os
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import torch
import yaml
from rasterio.crs import CRS
from rasterio.transform import from_origin
from torch import Tensor
from torchgeo.main import main as torchgeo

from tests.models.fake_data import TINY_SWIN
from tests.scene.helpers import smooth_image, write_raster
from torchgeo_gfm.cli import main
from torchgeo_gfm.models.checkpoint import GFMCheckpointError
from torchgeo_gfm.scene import SceneError, load_predictor
from torchgeo_gfm.tasks.inference import INFERENCE_KEY

ROOT = Path(__file__).parents[2]
CONFIGS = ROOT / 'configs' / 'finetune'
DATA = ROOT / 'tests' / 'data'
#: a 0.5 m grid in UTM 33N, as aerial imagery (the fits' data is 3-band 0-255)
UTM33 = CRS.from_epsg(32633)
TRANSFORM = from_origin(500_000.0, 5_000_000.0, 0.5, 0.5)
#: the engine's output (fp32 by default, on every CPU) against a direct fp32 forward
TOLERANCE = 1e-4
#: the 64 px test scene as one tile
ONE_TILE = ('--tile', '64', '--overlap', '0')


def fit(name: str, root: Path, *extra: str) -> Path:
    """``torchgeo fit --config configs/finetune/NAME.yaml``, one step; the .ckpt written."""
    environ = dict(os.environ)
    try:
        torchgeo(
            [
                'fit',
                f'--config={CONFIGS / f"{name}.yaml"}',
                '--model.init_args.weights=null',  # tests never download
                f'--data.dict_kwargs.root={DATA / name}',
                '--data.init_args.batch_size=2',
                '--data.init_args.num_workers=0',
                '--trainer.accelerator=cpu',
                f'--trainer.default_root_dir={root}',
                f'--trainer.logger.init_args.save_dir={root / "logs"}',
                '--trainer.max_epochs=1',
                '--trainer.max_steps=1',
                '--trainer.limit_train_batches=1',
                '--trainer.limit_val_batches=1',
                '--trainer.num_sanity_val_steps=0',
                '--trainer.enable_progress_bar=false',
                '--trainer.enable_model_summary=false',
                *extra,
            ]
        )
    finally:  # torchgeo's main sets GDAL options in the environment
        os.environ.clear()
        os.environ.update(environ)
    (checkpoint,) = (root / 'logs').rglob('*.ckpt')
    return checkpoint


@pytest.fixture(scope='module')
def vaihingen(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A FinetuneSemanticSegmentation (UPerNet, 6 classes) checkpoint of `torchgeo fit`."""
    return fit(
        'vaihingen',
        tmp_path_factory.mktemp('vaihingen'),
        '--data.init_args.patch_size=32',
        f'--model.init_args.backbone=tu-{TINY_SWIN}',
    )


@pytest.fixture(scope='module')
def ucmerced(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A FinetuneClassification (window 8 via model_kwargs, 21 classes) checkpoint."""
    return fit(
        'ucmerced',
        tmp_path_factory.mktemp('ucmerced'),
        f'--model.init_args.model={TINY_SWIN}',
    )


def predict(*args: str | Path) -> int:
    return main(['predict', *map(str, args), '--device', 'cpu'])


def datamodule_forward(
    checkpoint: Path, datamodule: object, image: np.ndarray
) -> Tensor:
    """Probabilities of the fitted task on *image*, normalised by *datamodule*'s ``aug``.

    The reference the engine must match: the checkpoint's own class, rebuilt by Lightning,
    on the input the datamodule's ``on_after_batch_transfer`` gives it at predict time.
    """
    from torchgeo_gfm.tasks import FinetuneClassification, FinetuneSemanticSegmentation

    classes: dict[str, Callable[..., torch.nn.Module]] = {
        'vaihingen': FinetuneSemanticSegmentation.load_from_checkpoint,
        'ucmerced': FinetuneClassification.load_from_checkpoint,
    }
    name = checkpoint.parents[2].name  # logs/NAME/version_0/checkpoints/
    task = classes[name](checkpoint, map_location='cpu', weights=None).eval()
    aug = datamodule._valid_attribute('predict_aug', 'aug')  # type: ignore[attr-defined]
    x = aug({'image': torch.from_numpy(image.astype(np.float32))[None]})['image']
    with torch.inference_mode():
        logits = task(x).float()
    return logits.softmax(1)[0]


@pytest.mark.slow
def test_segmentation(vaihingen: Path, tmp_path: Path) -> None:
    # larger than a 256 px COG block (overviews), not a multiple of the tile
    image = write_raster(
        tmp_path / 'in.tif', smooth_image(3, 300, 280), crs=UTM33, transform=TRANSFORM
    )
    out = tmp_path / 'classes.tif'
    assert predict(vaihingen, image, '-o', out, '--tile', '128', '--overlap', '32') == 0
    with rasterio.open(out) as dst, rasterio.open(image) as src:
        assert dst.driver == 'GTiff'
        assert dst.tags(ns='IMAGE_STRUCTURE')['LAYOUT'] == 'COG'
        assert dst.profile['tiled']
        assert dst.block_shapes == [(256, 256)]
        assert dst.overviews(1)
        assert dst.crs == src.crs == UTM33
        assert dst.transform == src.transform
        assert (dst.height, dst.width) == (src.height, src.width)
        assert dst.dtypes == ('uint8',)
        classes = dst.read(1)
    assert classes.min() >= 0
    assert classes.max() < 6


def test_segmentation_normalisation(
    vaihingen: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from torchgeo_gfm.datamodules import Vaihingen2DTiledDataModule

    # one tile the size of the scene: the engine feeds it as is, blending weight 1
    data = smooth_image(3, 64, 64, seed=3)
    image = write_raster(tmp_path / 'in.tif', data, crs=UTM33, transform=TRANSFORM)
    out = tmp_path / 'p.tif'
    assert predict(vaihingen, image, '-o', out, *ONE_TILE, '--probabilities') == 0
    config = vaihingen.parents[1] / 'config.yaml'
    assert (
        'normalisation: checkpoint metadata (torchgeo_gfm.datamodules.vaihingen.'
        'Vaihingen2DTiledDataModule.mean/std)'
    ) in capsys.readouterr().out
    with rasterio.open(out) as dst:
        probabilities = torch.from_numpy(dst.read())
    # the datamodule as the run's config.yaml has it, and its predict-time normalisation
    data_config = yaml.safe_load(config.read_text())['data']
    assert data_config['class_path'].endswith('.Vaihingen2DTiledDataModule')
    datamodule = Vaihingen2DTiledDataModule(
        **data_config['init_args'], **data_config['dict_kwargs']
    )
    datamodule.setup('predict')
    expected = datamodule_forward(vaihingen, datamodule, data)
    assert probabilities.shape == expected.shape == (6, 64, 64)
    assert (probabilities - expected).abs().max() <= TOLERANCE
    # TorchGeo's default (/ 255) would give another answer: the check has teeth
    other = tmp_path / 'unit.tif'
    assert (
        predict(
            vaihingen,
            image,
            '-o',
            other,
            *ONE_TILE,
            '--probabilities',
            '--normalize',
            'unit',
        )
        == 0
    )
    with rasterio.open(other) as dst:
        assert (torch.from_numpy(dst.read()) - expected).abs().max() > 1e-3


def test_fit_writes_inference_metadata(vaihingen: Path) -> None:
    from torchgeo.datasets import Vaihingen2D

    meta = torch.load(vaihingen, weights_only=True)[INFERENCE_KEY]
    assert meta['kind'] == 'segmentation'
    assert meta['mode'] == 'multiclass'
    assert meta['task'].endswith('.FinetuneSemanticSegmentation')
    assert meta['classes'] == list(Vaihingen2D.classes)
    assert (meta['in_channels'], meta['outputs'], meta['multiple']) == (3, 6, 32)
    assert meta['mean'] == pytest.approx([123.675, 116.28, 103.53], rel=1e-6)
    assert meta['std'] == pytest.approx([58.395, 57.12, 57.375], rel=1e-6)


def test_checkpoint_away_from_its_run(vaihingen: Path, tmp_path: Path) -> None:
    # moved out of its log folder: the metadata says everything the run's config did
    moved = Path(shutil.copy(vaihingen, tmp_path / 'best.ckpt'))
    in_run, away = load_predictor(vaihingen), load_predictor(moved)
    assert torch.equal(in_run.mean, away.mean)
    assert torch.equal(in_run.std, away.std)
    assert away.mean[0] == pytest.approx(123.675)
    assert away.classes is not None
    assert len(away.classes) == away.outputs == 6
    image = write_raster(
        tmp_path / 'in.tif', smooth_image(3, 64, 64), crs=UTM33, transform=TRANSFORM
    )
    assert predict(moved, image, '-o', tmp_path / 'c.tif', *ONE_TILE) == 0


@pytest.mark.slow
def test_plain_checkpoint_away_from_its_run(vaihingen: Path, tmp_path: Path) -> None:
    # a plain TorchGeo checkpoint (no metadata) keeps the config.yaml fallback
    checkpoint = torch.load(vaihingen, weights_only=True)
    del checkpoint[INFERENCE_KEY]
    plain = tmp_path / 'plain.ckpt'
    torch.save(checkpoint, plain)
    with pytest.raises(SceneError, match=r'no config\.yaml of its `torchgeo fit` run'):
        load_predictor(plain)
    with pytest.raises(SceneError, match=r'InferenceMetadata in trainer\.callbacks'):
        load_predictor(plain)
    assert load_predictor(plain, normalize='imagenet').mean[0] == pytest.approx(123.675)
    # a config.yaml of another model (a later run in the same folder) is not used
    config = yaml.safe_load((vaihingen.parents[1] / 'config.yaml').read_text())
    config['model']['init_args']['num_classes'] = 7
    (tmp_path / 'config.yaml').write_text(yaml.safe_dump(config))
    with pytest.raises(SceneError, match='does not record the normalisation'):
        load_predictor(plain)
    config['model']['init_args']['num_classes'] = 6
    (tmp_path / 'config.yaml').write_text(yaml.safe_dump(config))
    assert load_predictor(plain).source.endswith(f'(from {tmp_path / "config.yaml"})')


class Payload:
    """Unpickling this creates *marker*: proof that code from the file ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), 'w'))


@pytest.mark.slow
def test_fit_resumes_from_its_own_checkpoint(vaihingen: Path, tmp_path: Path) -> None:
    # the callback's check of --ckpt_path does not refuse a checkpoint of the run
    tiny = (
        '--data.init_args.patch_size=32',
        f'--model.init_args.backbone=tu-{TINY_SWIN}',
    )
    resumed = fit(
        'vaihingen',
        tmp_path,
        *tiny,
        f'--ckpt_path={vaihingen}',
        '--trainer.max_steps=2',
        '--trainer.max_epochs=2',
    )
    assert torch.load(resumed, weights_only=True)['global_step'] == 2


def test_fit_with_a_pickle_payload_runs_nothing(tmp_path: Path) -> None:
    # LightningCLI (2.6, cli.py _parse_ckpt_path) reads --ckpt_path with weights_only
    # before any callback exists: its error, not ours, but nothing in the file runs
    # (tests/tasks/test_inference.py checks the callback with Trainer.fit)
    marker = tmp_path / 'ran'
    payload = tmp_path / 'last.ckpt'
    torch.save({'state_dict': {}, 'loops': Payload(marker)}, payload)
    tiny = (
        '--data.init_args.patch_size=32',
        f'--model.init_args.backbone=tu-{TINY_SWIN}',
    )
    with pytest.raises((pickle.UnpicklingError, GFMCheckpointError)):
        fit('vaihingen', tmp_path, *tiny, f'--ckpt_path={payload}')
    assert not marker.exists()


@pytest.mark.slow
def test_classification(ucmerced: Path, tmp_path: Path) -> None:
    from torchgeo_gfm.datamodules import UCMercedImageNetDataModule

    # chips of 256 px (UC Merced's size): 2 x 2, the last row and column partial
    data = smooth_image(3, 400, 300, seed=5)
    image = write_raster(tmp_path / 'in.tif', data, crs=UTM33, transform=TRANSFORM)
    out = tmp_path / 'labels.tif'
    assert predict(ucmerced, image, '-o', out, '--tile', '256') == 0
    with rasterio.open(out) as dst:
        assert dst.tags(ns='IMAGE_STRUCTURE')['LAYOUT'] == 'COG'
        assert dst.crs == UTM33
        assert (dst.height, dst.width) == (2, 2)
        assert dst.transform == TRANSFORM @ rasterio.Affine.scale(256)
        labels = dst.read(1)
    assert labels.min() >= 0
    assert labels.max() < 21
    probabilities = tmp_path / 'p.tif'
    assert (
        predict(
            ucmerced, image, '-o', probabilities, '--tile', '256', '--probabilities'
        )
        == 0
    )
    with rasterio.open(probabilities) as dst:
        chip = torch.from_numpy(dst.read()[:, 0, 0])
    datamodule = UCMercedImageNetDataModule(root=str(DATA / 'ucmerced'))
    expected = datamodule_forward(ucmerced, datamodule, data[:, :256, :256])
    assert (chip - expected).abs().max() <= TOLERANCE
    assert labels[0, 0] == int(expected.argmax())
