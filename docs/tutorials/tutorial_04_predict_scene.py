# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

# sphinx-gallery: the docstring is the page title and introduction (reST), and the script
# reads as a tutorial: pydocstyle does not apply.
# ruff: noqa: D105, D107, D205, D212, D415

"""
Predict a whole GeoTIFF scene and look at it
============================================

A model is fine-tuned on small chips; a scene is thousands of pixels wide.
:func:`~torchgeo_gfm.scene.predict_scene` (the ``torchgeo-gfm predict`` command) reads the
scene tile by tile, runs the checkpoint, blends overlapping tiles so that no seams show, and
writes a Cloud-Optimized GeoTIFF with the input's CRS, transform and nodata.

To stay offline and fast, this tutorial generates a georeferenced scene, fine-tunes a tiny
segmentation model on chips of it for a few dozen steps, and predicts the whole scene with
its checkpoint. With a real checkpoint of ``torchgeo fit`` (for example
``configs/finetune/whu_building.yaml``) only the last step is needed.
"""

# %%
# A scene
# -------
# A 512 x 512 three-band GeoTIFF on a 10 m UTM grid, with "water" (blue, smooth blobs) on
# "land" (green-brown texture), and nodata in one corner, as scenes often have.

import tempfile
from pathlib import Path

import lightning.pytorch as pl
import matplotlib.pyplot as plt
import numpy as np
import rasterio
import torch
from rasterio.transform import from_origin
from torch.utils.data import DataLoader, Dataset
from torchgeo.tasks import SemanticSegmentation

from torchgeo_gfm.scene import predict_scene

rng = np.random.default_rng(0)
workdir = Path(tempfile.mkdtemp())
SIZE = 512
y, x = np.mgrid[0:SIZE, 0:SIZE] / SIZE
blobs = (np.sin(7 * x + 2 * np.sin(5 * y)) + np.cos(6 * y + 3 * np.sin(4 * x))) > 0.9
truth = blobs.astype(np.uint8)  # 1 = water
land = np.stack(
    [
        110 + 30 * rng.random((SIZE, SIZE)),
        120 + 40 * rng.random((SIZE, SIZE)),
        70 + 20 * rng.random((SIZE, SIZE)),
    ]
)
water = np.stack(
    [
        40 + 10 * rng.random((SIZE, SIZE)),
        70 + 10 * rng.random((SIZE, SIZE)),
        120 + 20 * rng.random((SIZE, SIZE)),
    ]
)
image = np.where(blobs, water, land).astype(np.uint8)
image[:, :96, -96:] = 0  # no data in the north-east corner

scene = workdir / 'scene.tif'
profile = {
    'driver': 'GTiff',
    'width': SIZE,
    'height': SIZE,
    'count': 3,
    'dtype': 'uint8',
    'crs': 'EPSG:32618',
    'transform': from_origin(583_000, 4_507_000, 10, 10),
    'nodata': 0,
}
with rasterio.open(scene, 'w', **profile) as dst:
    dst.write(image)
print(scene.name, profile['crs'], f'{SIZE} x {SIZE} px at 10 m')

# %%
# A quick fine-tuned checkpoint
# -----------------------------
# TorchGeo's :class:`~torchgeo.tasks.SemanticSegmentation` with a tiny FCN, trained on
# random 64 px chips of the scene's west half. The checkpoint records the normalisation the
# scene engine must apply (here in ``datamodule_hyper_parameters``; a ``torchgeo fit`` run
# records its datamodule in the ``config.yaml`` beside its checkpoints, which the engine
# reads); otherwise pass ``mean``/``std`` to ``predict_scene``.

MEAN, STD = image.reshape(3, -1).mean(1), image.reshape(3, -1).std(1)


class Chips(Dataset):
    """Random 64 px chips of the west half of the scene."""

    def __init__(self, n: int, seed: int = 0) -> None:
        self.n, self.seed = n, seed

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        r, c = np.random.default_rng((self.seed, index)).integers(
            0, [SIZE - 64, SIZE // 2 - 64]
        )
        chip = (image[:, r : r + 64, c : c + 64] - MEAN[:, None, None]) / STD[
            :, None, None
        ]
        return {
            'image': torch.from_numpy(chip).float(),
            'mask': torch.from_numpy(truth[r : r + 64, c : c + 64]).long(),
        }


task = SemanticSegmentation(
    model='fcn', in_channels=3, num_classes=2, num_filters=8, lr=1e-2
)
trainer = pl.Trainer(
    max_epochs=1,
    accelerator='cpu',
    logger=False,
    enable_checkpointing=False,
    enable_progress_bar=False,
    enable_model_summary=False,
)
trainer.fit(
    task,
    DataLoader(Chips(256), batch_size=8, shuffle=True),
    DataLoader(Chips(16, seed=1), batch_size=8),
)
checkpoint = workdir / 'water.ckpt'
trainer.save_checkpoint(checkpoint)
ckpt = torch.load(checkpoint, weights_only=True)
ckpt['hyper_parameters']['_class_path'] = 'torchgeo.tasks.SemanticSegmentation'
ckpt['datamodule_hyper_parameters'] = {'mean': MEAN.tolist(), 'std': STD.tolist()}
torch.save(ckpt, checkpoint)

# %%
# The whole scene
# ---------------
# Tiles of 128 px overlapping by 32: each output pixel is a weighted blend of every tile
# that covers it (weights taper towards tile edges), so no seams show. Memory stays bounded
# by tile x batch whatever the scene size.

result = predict_scene(
    checkpoint,
    [scene],
    workdir / 'water.tif',
    tile=128,
    overlap=32,
    batch_size=4,
    mean=MEAN.tolist(),
    std=STD.tolist(),
    progress=False,
)
print(result)

with rasterio.open(workdir / 'water.tif') as src:
    prediction = src.read(1)
    print(
        src.profile['driver'],
        src.crs,
        src.transform == profile['transform'],
        'nodata:',
        src.nodata,
        'overviews:',
        src.overviews(1),
    )

valid = image.any(0)
accuracy = (prediction[valid] == truth[valid]).mean()
print(
    f'pixel accuracy on the unseen east half: '
    f'{(prediction == truth)[:, SIZE // 2 :][valid[:, SIZE // 2 :]].mean():.3f} '
    f'(whole scene {accuracy:.3f})'
)

# %%
# Look at it
# ----------

fig, axes = plt.subplots(1, 3, figsize=(10, 3.6))
extent = (583_000, 583_000 + 10 * SIZE, 4_507_000 - 10 * SIZE, 4_507_000)
axes[0].imshow(image.transpose(1, 2, 0), extent=extent)
axes[0].axvline(583_000 + 10 * SIZE // 2, color='w', linestyle='--', linewidth=1)
axes[0].set_title('scene (trained west of the line)')
axes[1].imshow(
    np.ma.masked_where(~valid, truth), cmap='Blues', extent=extent, vmin=0, vmax=1
)
axes[1].set_title('truth')
axes[2].imshow(
    np.ma.masked_where(~valid, prediction), cmap='Blues', extent=extent, vmin=0, vmax=1
)
axes[2].set_title('predict_scene (COG)')
for ax in axes:
    ax.tick_params(labelsize=6)
    ax.set_xlabel('easting (m)', fontsize=7)
fig.tight_layout()

# %%
# From the command line the same run is::
#
#     torchgeo-gfm predict water.ckpt scene.tif -o water.tif --tile 128 --overlap 32
#
# ``--probabilities`` writes per-class probabilities instead, ``--vectorize water.gpkg``
# polygons of the classes; two inputs make a change-detection checkpoint compare dates.
# Details: :doc:`/scene`.
