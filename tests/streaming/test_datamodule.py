# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""GeoPileStreamingDataModule: GeoPileDataModule's batches and augmentation, from shards."""

from pathlib import Path
from typing import Any

import pytest
import torch

from torchgeo_gfm.datamodules import GeoPileDataModule, GeoPileStreamingDataModule
from torchgeo_gfm.datasets import write_geopile_shards


@pytest.fixture(scope='module')
def shards(geopile: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    out = str(tmp_path_factory.mktemp('local') / 'shards')
    write_geopile_shards(geopile, out, chunk_bytes='16kb')
    return out


def test_batches_and_shared_augmentation(
    shards: str, geopile: Path, tmp_path: Path
) -> None:
    kwargs: dict[str, Any] = {'batch_size': 4, 'size': 32, 'load_size': 64}
    dm = GeoPileStreamingDataModule(input_dir=shards, cache_dir=str(tmp_path), **kwargs)
    dm.setup('fit')
    batch = next(iter(dm.train_dataloader()))
    assert batch['image'].dtype == torch.uint8  # uint8 until the device
    assert batch['image'].shape == (4, 3, 64, 64)
    assert batch['source'].dtype == torch.int64
    folders = GeoPileDataModule(root=geopile, **kwargs)
    expected = folders.on_after_batch_transfer(dict(batch), 0)['image']
    out = dm.on_after_batch_transfer(batch, 0)['image']
    assert out.dtype == torch.float32
    assert out.shape == (4, 3, 32, 32)
    torch.testing.assert_close(out, expected)  # one implementation
    assert [type(m) for m in dm.train_aug.children()] == [
        type(m) for m in folders.train_aug.children()
    ]
    assert dm.val_dataloader() == []


def test_refuses_load_size_below_size() -> None:
    with pytest.raises(ValueError, match='load_size'):
        GeoPileStreamingDataModule(size=64, load_size=32)
