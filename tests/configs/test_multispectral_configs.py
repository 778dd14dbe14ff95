# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""The multispectral fine-tuning configs run as shipped on fake EuroSAT and BigEarthNet v2.

Only sizes and data are overridden; GFM's weights come from a tiny fake ``gfm.pth`` on disk
(the config's ``weights: true`` then loads it offline), so the band rule runs as in a real
fit.
"""

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from torchgeo.main import main

from tests.data.gfm.data import TINY, write_upstream_checkpoint
from torchgeo_gfm.datamodules import BigEarthNetS2DataModule, EuroSATSensorDataModule
from torchgeo_gfm.sensors import SensorError, get_sensor
from torchgeo_gfm.tasks import FinetuneClassification
from torchgeo_gfm.tasks.inference import INFERENCE_KEY

ROOT = Path(__file__).parents[2]
CONFIGS = ROOT / 'configs' / 'finetune'
DATA = ROOT / 'tests' / 'data'
#: config -> (fake data folder, where the config sets the dataset root, size overrides)
CASES: dict[str, tuple[str, str, list[str]]] = {
    'eurosat13': ('eurosat', 'dict_kwargs', []),
    # 10 % of 4 fake patches is one: no full batch of 2
    'bigearthnet_s2': (
        'bigearthnet_s2',
        'init_args',
        ['--data.init_args.train_fraction=0.5'],
    ),
}
#: where each fake band's values lie: band i of the stored order holds 1000 * (i + 1) + <100
EUROSAT_STORED = [
    0,
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    12,
    8,
    9,
    10,
    11,
]  # s2_l1c's order; B8A is last
BIGEARTHNET_STORED = list(range(12))  # s2_l2a's order is BigEarthNet's
SIZE = 32


def config(name: str) -> dict[str, Any]:
    return yaml.safe_load((CONFIGS / f'{name}.yaml').read_text())


@pytest.fixture(scope='module')
def tiny_gfm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """GFM's RGB checkpoint format with a tiny Swin (weights: true loads it offline)."""
    path = tmp_path_factory.mktemp('gfm') / 'gfm.pth'
    write_upstream_checkpoint(path, **TINY, teacher=False)
    return path


def tiny_model_kwargs(name: str, checkpoint: Path) -> dict[str, Any]:
    """The config's ``model_kwargs`` with a tiny Swin (GFM's window and all) read from disk."""
    kwargs = dict(config(name)['model']['init_args']['model_kwargs'])
    sizes = {k: v for k, v in TINY.items() if k != 'window_size'}
    overlay = {'pretrained_cfg_overlay': {'file': str(checkpoint)}}
    return {**kwargs, **sizes, 'img_size': SIZE, **overlay}


def test_every_config_is_tested() -> None:
    names = {'eurosat13', 'bigearthnet_s2'}
    assert names <= {p.stem for p in CONFIGS.glob('*.yaml')}
    assert set(CASES) == names


@pytest.mark.parametrize('name', sorted(CASES))
def test_bands_and_rgb_are_the_sensors(name: str) -> None:
    # the model takes the sensor's bands, and its RGB filters go to the sensor's R, G, B
    model, data = config(name)['model']['init_args'], config(name)['data']['init_args']
    sensor = get_sensor(data['sensor'])
    assert model['in_channels'] == sensor.num_bands
    assert model['model_kwargs']['rgb_indices'] == list(sensor.rgb)
    assert [sensor.bands[i] for i in sensor.rgb] == ['B4', 'B3', 'B2']
    assert model['weights'] is True
    assert model['model'] == 'gfm_swin_base'
    assert (model['layer_decay'], model['model_kwargs']['drop_path_rate']) == (0.9, 0.1)
    trainer = config(name)['trainer']
    assert (
        trainer['callbacks'][0]['class_path'] == 'torchgeo_gfm.tasks.InferenceMetadata'
    )
    assert (
        trainer['plugins'][0]['class_path']
        == 'torchgeo_gfm.precision.NativeMixedPrecision'
    )


@pytest.mark.parametrize('name', sorted(CASES))
def test_band_rule_puts_gfm_rgb_filters_on_the_sensors_rgb(
    name: str, tiny_gfm: Path
) -> None:
    args = dict(config(name)['model']['init_args'])
    args['model_kwargs'] = tiny_model_kwargs(name, tiny_gfm)
    task = FinetuneClassification(**args)
    weight = task.model.patch_embed.proj.weight.detach()
    rgb = torch.load(tiny_gfm, weights_only=False)['model']
    rgb = rgb['encoder.patch_embed.proj.weight']
    sensor = get_sensor(config(name)['data']['init_args']['sensor'])
    assert torch.equal(weight[:, list(sensor.rgb)], rgb)  # R, G, B in that order
    others = [i for i in range(sensor.num_bands) if i not in sensor.rgb]
    assert not weight[:, others].any()


def test_eurosat_reads_b8a_in_the_sensors_order() -> None:
    dm = EuroSATSensorDataModule(root=DATA / 'eurosat', batch_size=2)
    dm.setup('fit')
    image = next(iter(dm.train_dataloader()))['image']
    assert image.shape[1] == 13
    assert (image // 1000 - 1).amin((0, 2, 3)).tolist() == EUROSAT_STORED
    assert dm.bands == list(get_sensor('s2_l1c').bands)


def test_bigearthnet_reads_the_sensors_bands() -> None:
    dm = BigEarthNetS2DataModule(root=DATA / 'bigearthnet_s2', batch_size=2)
    dm.setup('fit')
    batch = next(iter(dm.train_dataloader()))
    assert set(batch) == {'image', 'label'}  # the reference map is dropped
    assert (batch['image'] // 1000 - 1).amin((0, 2, 3)).tolist() == BIGEARTHNET_STORED
    assert batch['label'].shape == (2, 19)


def test_normalised_with_the_sensors_statistics() -> None:
    dm = EuroSATSensorDataModule(root=DATA / 'eurosat', image_size=8)
    x = torch.rand(2, 13, 8, 8) * 10000
    out = dm.aug({'image': x.clone()})['image']
    torch.testing.assert_close(out, dm.sensor.normalize(x))


def test_bigearthnet_train_fraction() -> None:
    dm = BigEarthNetS2DataModule(
        root=DATA / 'bigearthnet_s2', train_fraction=0.5, seed=42
    )
    dm.setup('fit')
    assert len(dm.train_dataset) == 2  # type: ignore[arg-type]


def test_a_sensor_the_data_cannot_give_is_refused() -> None:
    # BigEarthNet's L2A files have no B10
    with pytest.raises(SensorError, match='no band B10 of sensor s2_l1c'):
        BigEarthNetS2DataModule(root=DATA / 'bigearthnet_s2', sensor='s2_l1c')
    with pytest.raises(ValueError, match='takes its bands from the sensor'):
        EuroSATSensorDataModule(root=DATA / 'eurosat', bands=('B04',))
    # EuroSAT stores L2A's 12 bands too: they are read in L2A's order
    dm = EuroSATSensorDataModule(root=DATA / 'eurosat', sensor='s2_l2a')
    assert 'B10' not in dm.kwargs['bands']
    assert len(dm.kwargs['bands']) == 12


@pytest.mark.slow
@pytest.mark.parametrize('name', sorted(CASES))
def test_config_fits_and_records_the_sensor(
    name: str, tiny_gfm: Path, tmp_path: Path
) -> None:
    # one step of the config as shipped (a tiny GFM, fake data): the checkpoint knows its sensor
    data, group, sizes = CASES[name]
    main(
        [
            'fit',
            f'--config={CONFIGS / f"{name}.yaml"}',
            f'--model.init_args.model_kwargs={json.dumps(tiny_model_kwargs(name, tiny_gfm))}',
            f'--data.{group}.root={DATA / data}',
            '--data.init_args.batch_size=2',
            '--data.init_args.num_workers=0',
            f'--data.init_args.image_size={SIZE}',
            '--trainer.accelerator=cpu',
            f'--trainer.default_root_dir={tmp_path}',
            f'--trainer.logger.init_args.save_dir={tmp_path / "logs"}',
            '--trainer.max_steps=1',
            '--trainer.limit_train_batches=1',
            '--trainer.limit_val_batches=1',
            '--trainer.num_sanity_val_steps=0',
            *sizes,
        ]
    )
    (checkpoint,) = (tmp_path / 'logs').rglob('*.ckpt')
    meta = torch.load(checkpoint, weights_only=True)[INFERENCE_KEY]
    sensor = get_sensor(config(name)['data']['init_args']['sensor'])
    assert meta['sensor'] == sensor.to_dict()
    assert meta['bands'] == list(sensor.bands)
    assert meta['mean'] == pytest.approx(sensor.mean)
    assert meta['std'] == pytest.approx(sensor.std)
    assert meta['in_channels'] == sensor.num_bands
