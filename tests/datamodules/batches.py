# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""One device-side batch of a datamodule, as Lightning would produce it."""

from typing import Any

from lightning.pytorch import Trainer
from torchgeo.datamodules import NonGeoDataModule


def device_batch(dm: NonGeoDataModule, stage: str) -> dict[str, Any]:
    """Set up *dm*, take its first *stage* batch and apply the device augmentation.

    Args:
        dm: the datamodule.
        stage: 'train', 'val' or 'test'.

    Returns:
        The batch after ``on_after_batch_transfer``.
    """
    dm.trainer = Trainer(accelerator='cpu', logger=False, enable_progress_bar=False)
    dm.setup('fit' if stage in ('train', 'val') else stage)
    first = next(iter(getattr(dm, f'{stage}_dataloader')()))
    flag = {'train': 'training', 'val': 'validating'}.get(stage, 'testing')
    setattr(dm.trainer, flag, True)
    return dm.on_after_batch_transfer(first, 0)
