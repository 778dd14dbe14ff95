# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Small georeferenced rasters and tiny fine-tuned checkpoints for the scene tests."""

from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import torch
from lightning.pytorch import LightningModule, Trainer
from rasterio.crs import CRS
from rasterio.transform import Affine, from_origin

from torchgeo_gfm.tasks.inference import INFERENCE_KEY

UTM = CRS.from_epsg(32618)
#: a 10 m grid in UTM 18N (New York area)
UTM_TRANSFORM = from_origin(583_000.0, 4_507_000.0, 10.0, 10.0)
WGS84 = CRS.from_epsg(4326)


def write_raster(
    path: Path,
    data: np.ndarray,
    crs: CRS | None = UTM,
    transform: Affine = UTM_TRANSFORM,
    nodata: float | None = None,
    tags: dict[str, str] | None = None,
) -> Path:
    """Write ``[C, H, W]`` as a GeoTIFF."""
    with rasterio.open(
        path,
        'w',
        driver='GTiff',
        count=data.shape[0],
        height=data.shape[1],
        width=data.shape[2],
        dtype=data.dtype,
        crs=crs,
        transform=transform,
        nodata=nodata,
    ) as dst:
        dst.write(data)
        if tags:
            dst.update_tags(**tags)
    return path


def smooth_image(bands: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """uint8 image with structure at several scales (not noise only)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = [
        127 + 60 * np.sin(x / (7 + b) + b) + 50 * np.cos(y / (11 + 2 * b))
        for b in range(bands)
    ]
    noise = rng.normal(0, 10, (bands, height, width))
    return np.clip(np.stack(base) + noise, 0, 255).astype(np.uint8)


def save_checkpoint(
    task: LightningModule,
    path: Path,
    datamodule: dict[str, Any] | None = None,
    class_path: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Save a real Lightning checkpoint of *task* (as `torchgeo fit` would, optionally).

    Args:
        task: the task.
        path: the .ckpt.
        datamodule: datamodule hyper-parameters to record (with ``_class_path``).
        class_path: the task's class path, recorded as LightningCLI does.
        metadata: inference metadata to record (replacing what the task wrote), e.g.
            from :func:`torchgeo_gfm.tasks.inference.inference_metadata`.
    """
    trainer = Trainer(
        accelerator='cpu',
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
    )
    trainer.strategy.connect(task)
    trainer.save_checkpoint(path)
    if datamodule is not None or class_path is not None or metadata is not None:
        checkpoint = torch.load(path, weights_only=True)
        if datamodule is not None:
            checkpoint['datamodule_hyper_parameters'] = datamodule
        if class_path is not None:
            checkpoint['hyper_parameters']['_class_path'] = class_path
        if metadata is not None:
            checkpoint[INFERENCE_KEY] = metadata
        torch.save(checkpoint, path)
    return path


#: what `torchgeo fit --config configs/finetune/whu_building.yaml` records of its datamodule
WHU_DATAMODULE = {
    '_class_path': 'torchgeo_gfm.datamodules.WHUBuildingDataModule',
    'patch_size': 512,
    'batch_size': 8,
    'num_workers': 4,
    'root': 'data/whu_building',
    'download': True,
}


def copy_band_checkpoint(path: Path, num_classes: int) -> Path:
    """An FCN checkpoint whose class at each pixel is the value of band 1 (0..K-1).

    For tests that know the exact output: the backbone's convolutions pass band 1 through
    (centre tap 1, every other weight 0; LeakyReLU keeps values >= 0), and the last layer
    scores class ``c`` as ``k (t_c s - t_c^2 / 2)`` with ``t_c = c / (K - 1)``, largest at
    ``t_c = s``. Recorded normalisation ``(x - 0) / (K - 1)``: an integer ``v`` gives
    ``s = t_v``, and class ``v`` wins by ``k / (2 (K - 1)^2) = 10`` logits over its
    neighbours (no near-ties for the blending to flip).

    Args:
        path: the .ckpt.
        num_classes: K.
    """
    from torchgeo.tasks import SemanticSegmentation

    task = SemanticSegmentation(
        model='fcn', in_channels=3, num_classes=num_classes, num_filters=2
    )
    model: Any = task.model
    t = torch.arange(num_classes, dtype=torch.float32) / (num_classes - 1)
    k = 20.0 * (num_classes - 1) ** 2
    with torch.no_grad():
        for layer in model.backbone:
            if isinstance(layer, torch.nn.Conv2d):
                for parameter in layer.parameters():
                    parameter.zero_()
                layer.weight[0, 0, 1, 1] = 1.0
        model.last.weight.zero_()
        model.last.weight[:, 0, 0, 0] = k * t
        model.last.bias.copy_(-k * t**2 / 2)
    return save_checkpoint(task, path, {'mean': [0.0], 'std': [num_classes - 1.0]})
