# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

# sphinx-gallery: the docstring is the page title and introduction (reST), and the script
# reads as a tutorial: pydocstyle does not apply.
# ruff: noqa: D205, D212, D415

"""
A multispectral student for Sentinel-2
======================================

GFM's recipe works for more than RGB: a student with all 13 Sentinel-2 bands learns by
masked-image modelling of every band while it is distilled towards an **RGB** teacher that
sees the true-colour rendering of the same image. A :class:`~torchgeo_gfm.sensors.Sensor`
(here the shipped ``s2_l1c``) says what the bands are, how the student normalises them and
how they render in true colour; the checkpoint and the exported weights record it, so
embeddings of a scene are normalised with the right statistics without being told.

This tutorial runs on a CPU in seconds, offline: it writes Sentinel-2-like GeoTIFFs,
pretrains a **tiny** 13-band student against a tiny, **randomly initialised** RGB teacher for
a few steps, exports the student and embeds a 13-band scene with nodata. The real run is the
same with ``configs/gfm_s2.yaml`` (Swin-B student from GFM's RGB weights, ImageNet-22k
teacher, SSL4EO-S12): :doc:`/user_guide/pretraining` (section "Multispectral"); sensors and
your own: :doc:`/sensors`.
"""

# %%
# Sentinel-2-like imagery
# -----------------------
# Level-1C values are uint16 reflectance x 10000 in 13 bands (B1 ... B12, with B8A and the
# cirrus band B10). The images here are smooth patches of four land covers, each with a
# typical spectrum (water is dark beyond red, vegetation bright in the near infrared, soil
# bright in the short-wave infrared), some brightness variation and sensor noise.

import json
import tempfile
from pathlib import Path

import lightning.pytorch as pl
import matplotlib.pyplot as plt
import numpy as np
import pyarrow.parquet as pq
import rasterio
import timm
import torch
from rasterio.transform import from_origin

from torchgeo_gfm.datamodules import MultibandFolderDataModule
from torchgeo_gfm.models.checkpoint import backbone_sensor
from torchgeo_gfm.scene import Backbone, embed_scene
from torchgeo_gfm.sensors import get_sensor
from torchgeo_gfm.tasks import ContinualPretraining
from torchgeo_gfm.tasks.export import export_checkpoint

sensor = get_sensor('s2')  # an alias of s2_l1c
print(sensor.name, sensor.num_bands, 'bands:', ' '.join(sensor.bands))
print('red, green, blue =', [sensor.bands[i] for i in sensor.rgb])

# reflectance of water, vegetation, bare soil and built-up land, band by band (B1 ... B12)
SPECTRA = np.array(
    [
        [0.11, 0.09, 0.07, 0.05, 0.04, 0.04, 0.03, 0.03, 0.03, 0.01, 0.001, 0.01, 0.01],
        [0.12, 0.09, 0.09, 0.05, 0.11, 0.28, 0.34, 0.36, 0.37, 0.12, 0.002, 0.18, 0.09],
        [0.14, 0.13, 0.16, 0.20, 0.22, 0.24, 0.26, 0.27, 0.28, 0.09, 0.003, 0.33, 0.27],
        [0.15, 0.14, 0.15, 0.16, 0.17, 0.18, 0.19, 0.20, 0.20, 0.07, 0.003, 0.22, 0.19],
    ]
)


def smooth(rng: np.random.Generator, n: int, size: int, cells: int) -> np.ndarray:
    """*n* smooth random fields: coarse noise, bicubically upsampled."""
    coarse = torch.from_numpy(rng.standard_normal((1, n, cells, cells)))
    fine = torch.nn.functional.interpolate(coarse, size=size, mode='bicubic')
    return fine[0].numpy()


def sentinel2_like(rng: np.random.Generator, size: int, patch: int) -> np.ndarray:
    """A ``[13, size, size]`` uint16 image of land-cover patches about *patch* px wide."""
    cover = smooth(rng, len(SPECTRA), size, cells=max(size // patch, 3)).argmax(0)
    brightness = 1 + 0.15 * smooth(rng, 1, size, cells=size // 8)[0]
    reflectance = SPECTRA[cover].transpose(2, 0, 1) * brightness
    reflectance += rng.normal(0, 0.004, reflectance.shape)
    return np.clip(reflectance * 10_000, 1, 65_535).astype(np.uint16)


def write_geotiff(path: Path, image: np.ndarray, nodata: int | None = None) -> None:
    """A UTM zone 33N GeoTIFF, 10 m pixels."""
    bands, height, width = image.shape
    transform = from_origin(400_000, 5_600_000, 10, 10)
    with rasterio.open(
        path,
        'w',
        driver='GTiff',
        width=width,
        height=height,
        count=bands,
        dtype='uint16',
        crs='EPSG:32633',
        transform=transform,
        nodata=nodata,
    ) as dst:
        dst.write(image)
        dst.descriptions = sensor.bands


workdir = Path(tempfile.mkdtemp())
rng = np.random.default_rng(0)
for i in range(12):  # any folder tree of GeoTIFFs, any size
    folder = workdir / 'pretrain' / f'tile_{i // 4}'
    folder.mkdir(parents=True, exist_ok=True)
    write_geotiff(folder / f'{i}.tif', sentinel2_like(rng, 160, patch=48))
print(len(list((workdir / 'pretrain').rglob('*.tif'))), 'GeoTIFFs of 13 x 160 x 160')

# %%
# The data and the task
# ---------------------
# :class:`~torchgeo_gfm.datamodules.MultibandFolderDataModule` reads random windows of
# every GeoTIFF under ``root`` (band count and dtype checked against the sensor, file by
# file) and crops and flips them on the device. It does **not** normalise: the batch holds
# the stored values, and the task does the rest with its sensor. The student sees
# ``sensor.normalize(x)`` (the sensor's per-band mean and std) and reconstructs all 13
# bands; the RGB teacher sees the true colour, reflectance of B4, B3, B2 divided by
# ``sensor.white`` (0.3) and clipped to [0, 1], then ImageNet-normalised.
#
# As in :doc:`tutorial_03_continual_pretraining`, the student is GFM's architecture shrunk
# and the teacher a tiny Swin with random weights (``teacher_weights=None``); a real run
# starts the student from GFM's RGB weights (``weights=True``: the band rule puts the RGB
# filters on the sensor's red, green and blue) and uses the ImageNet-22k teacher.

datamodule = MultibandFolderDataModule(
    root=workdir / 'pretrain', sensor='s2', batch_size=4, size=96, load_size=128
)
tiny_student = {'embed_dim': 32, 'depths': (1, 1, 1, 1), 'num_heads': (1, 2, 4, 8)}
task = ContinualPretraining(
    model='gfm_swin_base',
    model_kwargs={**tiny_student, 'window_size': 6},
    teacher='swin_tiny_patch4_window7_224',
    teacher_weights=None,
    teacher_kwargs={'embed_dim': 32, 'depths': (1, 1, 2, 1), 'num_heads': (1, 2, 4, 8)},
    teacher_size=112,
    sensor='s2_l1c',
    lr=1e-3,
    warmup_lr=1e-5,
    min_lr=1e-4,
    warmup_epochs=1,
    lr_batch_ref=4,
    plot_every_n_steps=0,
)
patch_embed = task.model.student.patch_embed.proj
print('student input bands:', patch_embed.in_channels)

trainer = pl.Trainer(
    max_steps=6,
    accelerator='cpu',
    default_root_dir=workdir / 'run',
    logger=False,
    enable_checkpointing=False,
    enable_progress_bar=False,
    enable_model_summary=False,
)
trainer.fit(task, datamodule=datamodule)
checkpoint = workdir / 'run' / 's2-student.ckpt'
trainer.save_checkpoint(checkpoint)
print({k: round(float(v), 3) for k, v in trainer.logged_metrics.items() if 'loss' in k})

# %%
# What the teacher sees
# ---------------------
# One training batch as the device receives it, in stored values: top, the true-colour
# rendering the RGB teacher gets (``sensor.true_colour``); bottom, a false-colour
# composite of near infrared (B8), red (B4) and green (B3), in which vegetation is red and
# water black: information the 13-band student sees and the teacher does not.

batch = datamodule.on_after_batch_transfer(next(iter(datamodule.train_dataloader())), 0)
images = batch['image']
true_colour = sensor.true_colour(images)
nir_red_green = [sensor.bands.index(b) for b in ('B8', 'B4', 'B3')]
reflectance = images[:, nir_red_green] * sensor.scale + sensor.offset
false_colour = (reflectance / 0.4).clamp(0, 1)
fig, axes = plt.subplots(2, len(images), figsize=(2.2 * len(images), 4.6))
for i in range(len(images)):
    for row, picture in enumerate((true_colour, false_colour)):
        axes[row, i].imshow(picture[i].permute(1, 2, 0).numpy())
        axes[row, i].axis('off')
axes[0, 0].set_title('true colour (teacher)', fontsize=9, loc='left')
axes[1, 0].set_title('false colour B8/B4/B3', fontsize=9, loc='left')
fig.tight_layout()

# %%
# Export the student
# ------------------
# ``export_checkpoint`` (``torchgeo-gfm export``) writes the
# student with timm key names to safetensors and records the sensor in its metadata.

student_file = export_checkpoint(checkpoint, workdir / 's2-student.safetensors')
recorded = backbone_sensor(student_file)
print(f'{student_file.name}: sensor {recorded.name} ({recorded.num_bands} bands)')

# %%
# Embeddings of a 13-band scene
# -----------------------------
# A 640 x 640 scene whose left edge is outside the swath (nodata 0, as in Sentinel-2 L1C
# tiles). :func:`~torchgeo_gfm.scene.embed_scene` writes one embedding per 64 px chip to
# GeoParquet, skipping chips that are nodata everywhere and averaging the others over
# their valid pixels. A Swin-B student is embedded from its file alone
# (``embed_scene([scene], out, weights='s2-student.safetensors')``: the sensor it records
# normalises the bands and checks that the scene has 13); this tiny one is wrapped in a
# :class:`~torchgeo_gfm.scene.Backbone` with the statistics of the recorded sensor.

scene = sentinel2_like(rng, 640, patch=128)
rows, cols = np.mgrid[:640, :640]
scene[:, cols < 200 - rows // 4] = 0  # the swath's edge
scene_file = workdir / 's2-scene.tif'
write_geotiff(scene_file, scene, nodata=0)

model = timm.create_model(
    'gfm_swin_base',
    pretrained=True,
    pretrained_cfg_overlay={'file': str(student_file)},
    num_classes=0,
    in_chans=recorded.num_bands,
    **tiny_student,
).eval()
backbone = Backbone(
    model, 4, None, recorded.mean, recorded.std, 'tiny S2 student', recorded
)
result = embed_scene(
    [scene_file],
    workdir / 's2-embeddings.parquet',
    backbone=backbone,
    chip=64,
    progress=False,
)
table = pq.read_table(result.output)
how = json.loads(table.schema.metadata[b'torchgeo_gfm'])
print(f'{result.rows} chips of {(640 // 64) ** 2} (the rest is nodata)')
print('recorded in the GeoParquet: sensor', how['sensor'])

# %%
# The embeddings at a glance
# --------------------------
# The first three principal components of the embeddings, as red, green and blue, chip by
# chip, next to the scene's true colour: chips of the same land cover get similar colours.
# Chips cut by the swath's edge stand apart: their missing pixels reach the model as the
# band means (0 once normalised, a flat area), although only the valid pixels are averaged
# into the embedding. A tiny student after six steps tells little more than colours apart;
# a real student's components follow what the chips show.

embeddings = np.stack(table['embedding'].to_numpy(zero_copy_only=False))
centred = embeddings - embeddings.mean(0)
components = np.linalg.svd(centred, full_matrices=False)[2][:3]
pca = centred @ components.T
pca = (pca - pca.min(0)) / (pca.max(0) - pca.min(0))
grid = np.ones((10, 10, 3))  # white: no embedding (nodata)
chip_rows = table['row'].to_numpy() // 64
chip_cols = table['col'].to_numpy() // 64
grid[chip_rows, chip_cols] = pca

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 4.4))
picture = sensor.true_colour(torch.from_numpy(scene.astype(np.float32)))
picture[:, (scene == 0).all(0)] = 1  # nodata in white
ax1.imshow(picture.permute(1, 2, 0))
ax1.set_title('13-band scene, true colour', fontsize=9)
ax2.imshow(grid, extent=(0, 640, 640, 0))
ax2.set_title('embeddings: first 3 principal components', fontsize=9)
for ax in (ax1, ax2):
    ax.axis('off')
fig.tight_layout()

# %%
# From the command line the same steps are::
#
#     torchgeo fit --config configs/gfm_s2.yaml --data.init_args.root data/ssl4eo_s12
#     torchgeo-gfm export output/gfm_s2/checkpoints/last.ckpt s2-student.safetensors
#     torchgeo-gfm embed s2-scene.tif -o s2-embeddings.parquet --weights s2-student.safetensors
#
# Sensors, their YAML files and ``torchgeo-gfm stats`` for your own: :doc:`/sensors`.
