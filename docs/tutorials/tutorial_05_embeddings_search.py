# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

# sphinx-gallery: the docstring is the page title and introduction (reST), and the script
# reads as a tutorial: pydocstyle does not apply.
# ruff: noqa: D205, D212, D415

"""
Embeddings and a nearest-neighbour search
=========================================

:func:`~torchgeo_gfm.scene.embed_scene` (the ``torchgeo-gfm embed`` command) cuts a scene
into chips, runs a GFM backbone over them and writes one embedding per chip, with the chip's
footprint, to GeoParquet: the schema TorchGeo's ``ClayEmbeddings`` reads, and any GIS opens.
With embeddings, "find more places like this one" is a nearest-neighbour search.

To stay offline and fast, the backbone here is a **tiny** model of GFM's architecture with
random weights, saved to a small weights file. With the published weights, leave out
``backbone=`` (``weights`` defaults to ``GFM_Weights.GEOPILE_RGB_GFM``) or pass
``weights='gfm.safetensors'``.
"""

# %%
# A scene made of land-cover patches
# ----------------------------------
# Procedural images of five kinds (fields, urban, water, forest, roads, from
# :func:`~torchgeo_gfm.datasets.write_synthetic_geopile`) tiled into a 640 x 640 GeoTIFF,
# 64 px per patch, so that we know what each chip shows.

import tempfile
from pathlib import Path

import geopandas as gpd
import matplotlib.pyplot as plt
import numpy as np
import rasterio
import timm
import torch
from rasterio.transform import from_origin

import torchgeo_gfm.models  # noqa: F401  (registers gfm_swin_base)
from torchgeo_gfm.datasets import write_synthetic_geopile
from torchgeo_gfm.datasets.synthetic import SCENES
from torchgeo_gfm.datasets.utils import read_rgb
from torchgeo_gfm.models import save_backbone
from torchgeo_gfm.scene import Backbone, embed_scene

workdir = Path(tempfile.mkdtemp())
pile = write_synthetic_geopile(
    workdir / 'pile',
    images_per_class=4,
    sources=('a', 'b', 'c'),
    sizes=(128,),
    formats=False,
)
CHIP, GRID = 64, 10
rng = np.random.default_rng(0)
kinds = rng.integers(0, len(SCENES), (GRID, GRID))  # what each chip shows
files = {k: sorted(pile.glob(f'*/{k}/*')) for k in SCENES}
scene = np.zeros((3, GRID * CHIP, GRID * CHIP), dtype=np.uint8)
for (r, c), k in np.ndenumerate(kinds):
    choice = files[SCENES[k]][rng.integers(len(files[SCENES[k]]))]
    scene[:, r * CHIP : (r + 1) * CHIP, c * CHIP : (c + 1) * CHIP] = read_rgb(
        choice, size=CHIP
    )

path = workdir / 'scene.tif'
with rasterio.open(
    path,
    'w',
    driver='GTiff',
    width=GRID * CHIP,
    height=GRID * CHIP,
    count=3,
    dtype='uint8',
    crs='EPSG:32618',
    transform=from_origin(583_000, 4_507_000, 10, 10),
) as dst:
    dst.write(scene)

# %%
# A small weights file
# --------------------
# :func:`~torchgeo_gfm.models.save_backbone` writes weights as ``torchgeo-gfm export`` does
# (safetensors, timm names); timm loads them into the same architecture.

tiny = {'embed_dim': 32, 'depths': (1, 1, 1, 1), 'num_heads': (1, 2, 4, 8)}
weights = workdir / 'tiny_gfm.safetensors'
save_backbone(timm.create_model('gfm_swin_base', **tiny).state_dict(), weights)
model = timm.create_model(
    'gfm_swin_base',
    pretrained=True,
    num_classes=0,
    pretrained_cfg_overlay={'file': str(weights)},
    **tiny,
).eval()
mean = [0.485 * 255, 0.456 * 255, 0.406 * 255]
std = [0.229 * 255, 0.224 * 255, 0.225 * 255]
backbone = Backbone(
    model, stage=4, in_channels=None, mean=mean, std=std, name='tiny GFM'
)
print(f'{weights.name}: {weights.stat().st_size / 1e6:.1f} MB')

# %%
# Embed every chip
# ----------------
# One row per 64 px chip: its footprint (``geometry``, EPSG:4326) and its embedding (the
# pooled last stage, 256 values for this tiny model, 1024 for Swin-B).

result = embed_scene(
    [path], workdir / 'embeddings.parquet', backbone=backbone, chip=CHIP, progress=False
)
table = gpd.read_parquet(result.output)
print(result.rows, 'chips;', table.crs.to_string(), '; columns:', list(table.columns))
print(table.drop(columns=['embedding', 'source']).head(3).to_string())

# %%
# Nearest neighbours
# ------------------
# Cosine similarity between the query chip's embedding and every other one. Chips showing
# the same kind of land cover come first; with the published weights the neighbours also
# follow what the colours alone do not tell apart.

embeddings = torch.tensor(np.stack(table['embedding'].to_numpy()), dtype=torch.float32)
embeddings = torch.nn.functional.normalize(embeddings, dim=1)
centres = table.to_crs('EPSG:32618').geometry.centroid
rows = np.clip(((4_507_000 - centres.y) // (10 * CHIP)).astype(int), 0, GRID - 1)
cols = np.clip(((centres.x - 583_000) // (10 * CHIP)).astype(int), 0, GRID - 1)
chip_kind = kinds[rows, cols]

query = int(np.flatnonzero(chip_kind == SCENES.index('water'))[0])
similarity = embeddings @ embeddings[query]
neighbours = similarity.argsort(descending=True)[1:9].numpy()
same = (chip_kind[neighbours] == chip_kind[query]).mean()
print(
    f'query: a {SCENES[chip_kind[query]]} chip; '
    f'{same:.0%} of its 8 nearest neighbours show the same (chance: '
    f'{(chip_kind == chip_kind[query]).mean():.0%})'
)

# %%
# On the map
# ----------

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.6))
extent = (583_000, 583_000 + 10 * GRID * CHIP, 4_507_000 - 10 * GRID * CHIP, 4_507_000)
ax1.imshow(scene.transpose(1, 2, 0), extent=extent)
ax1.set_title('scene, query (white) and its 8 nearest chips (yellow)', fontsize=9)
utm = table.to_crs('EPSG:32618')
utm.iloc[neighbours].boundary.plot(ax=ax1, color='yellow', linewidth=2)
utm.iloc[[query]].boundary.plot(ax=ax1, color='white', linewidth=3)
utm.assign(similarity=similarity.numpy()).plot(
    column='similarity', ax=ax2, cmap='magma', legend=True
)
ax2.set_title('cosine similarity to the query', fontsize=9)
for ax in (ax1, ax2):
    ax.tick_params(labelsize=6)
fig.tight_layout()

# %%
# TorchGeo reads the same file as a dataset
# (``torchgeo.datasets.ClayEmbeddings(root='embeddings.parquet')``), and ``--dense emb.tif``
# writes the feature map as a multi-band COG instead. From the command line::
#
#     torchgeo-gfm embed scene.tif -o embeddings.parquet --weights gfm.safetensors --chip 64
#
# Details: :doc:`/scene`.
