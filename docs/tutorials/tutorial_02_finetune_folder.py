# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

# sphinx-gallery: the docstring is the page title and introduction (reST), and the script
# reads as a tutorial: pydocstyle does not apply.
# ruff: noqa: D205, D212, D415

"""
Fine-tune on your own folder of labelled images
===============================================

Your data: a folder with one sub-folder per class (``root/<class>/<image>``), the layout of
torchvision's ``ImageFolder``. TorchGeo reads it as it is
(:class:`torchgeo.datasets.NonGeoClassificationDataset`), and
:class:`~torchgeo_gfm.tasks.FinetuneClassification` fine-tunes GFM on it with the paper's
recipe (layer-wise learning-rate decay, AdamW, warmup + cosine).

To run in seconds on a CPU, this tutorial generates a small folder and fine-tunes a
**tiny, randomly initialised** model of GFM's architecture for a few epochs. For real work
drop the ``model_kwargs`` that shrink it and load the weights with ``weights=True``
(the published GFM student).
"""

# %%
# A folder of labelled images
# ---------------------------
# :func:`~torchgeo_gfm.datasets.write_synthetic_geopile` writes procedural scenes (fields,
# urban, water, forest, roads) in one folder per class; point ``root`` at your own folder
# instead.

import tempfile
from pathlib import Path

import lightning.pytorch as pl
import matplotlib.pyplot as plt
import pandas as pd
import torch
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader, random_split
from torchgeo.datasets import NonGeoClassificationDataset

from torchgeo_gfm.datasets import write_synthetic_geopile
from torchgeo_gfm.tasks import FinetuneClassification

workdir = Path(tempfile.mkdtemp())
write_synthetic_geopile(
    workdir / 'pile', images_per_class=10, sources=('mine',), sizes=(96,), formats=False
)
root = workdir / 'pile' / 'mine'
print(sorted(p.name for p in root.iterdir()))

# %%
# The dataset
# -----------
# GFM expects ImageNet-normalised RGB. The transform also resizes to the model's input
# size (64 px here; the paper fine-tunes at 256 with window 8).

SIZE = 64
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1) * 255
STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1) * 255


def normalise(sample: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Resize to SIZE and normalise with ImageNet statistics (0-255 input)."""
    image = torch.nn.functional.interpolate(
        sample['image'][None], size=(SIZE, SIZE), mode='bilinear', antialias=True
    )[0]
    return {**sample, 'image': (image - MEAN) / STD}


dataset = NonGeoClassificationDataset(root, transforms=normalise)
train, val = random_split(
    dataset, [0.75, 0.25], generator=torch.Generator().manual_seed(0)
)
print(
    f'{len(dataset)} images, classes {dataset.classes}; {len(train)} train, {len(val)} val'
)

# %%
# The task
# --------
# ``model='gfm_swin_base'`` is GFM's Swin; ``model_kwargs`` reach ``timm.create_model``.
# Here they shrink it (width 32, one block per stage) so that it trains in seconds; with
# ``weights=True`` and only ``img_size``/``window_size`` in ``model_kwargs``, this is the
# paper's fine-tuning of the published weights. Mixup and cutmix are off for so few images,
# and the learning rate is scaled for a batch of 8 (``lr_batch_ref``).

task = FinetuneClassification(
    model='gfm_swin_base',
    model_kwargs={
        'embed_dim': 32,
        'depths': (1, 1, 1, 1),
        'num_heads': (1, 2, 4, 8),
        'img_size': SIZE,
        'window_size': 4,
    },
    num_classes=len(dataset.classes),
    lr=2e-3,
    lr_batch_ref=8,
    warmup_epochs=1,
    mixup=0,
    cutmix=0,
    label_smoothing=0,
)

trainer = pl.Trainer(
    max_epochs=6,
    accelerator='cpu',
    logger=CSVLogger(workdir / 'logs', name='finetune'),
    enable_checkpointing=False,
    enable_progress_bar=False,
    enable_model_summary=False,
    log_every_n_steps=1,
)
trainer.fit(
    task,
    train_dataloaders=DataLoader(train, batch_size=8, shuffle=True),
    val_dataloaders=DataLoader(val, batch_size=8),
)

# %%
# How it went
# -----------
# The logger wrote a CSV of the metrics; the training loss goes down and the validation
# accuracy goes up (on generated data that is easy to separate).

metrics = pd.read_csv(Path(trainer.logger.log_dir) / 'metrics.csv')
per_epoch = metrics.groupby('epoch').mean(numeric_only=True)
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8, 3))
per_epoch['train_loss'].plot(ax=ax1, marker='o', title='training loss')
per_epoch['val_OverallAccuracy'].dropna().plot(
    ax=ax2, marker='o', color='C1', title='validation accuracy'
)
for ax in (ax1, ax2):
    ax.set_xlabel('epoch')
fig.tight_layout()
print(per_epoch[['train_loss', 'val_loss', 'val_OverallAccuracy']].round(3).to_string())

# %%
# Predictions on the validation images
# ------------------------------------

task.eval()
samples = [val[i] for i in range(min(8, len(val)))]
with torch.inference_mode():
    logits = task(torch.stack([s['image'] for s in samples]))
fig, axes = plt.subplots(1, len(samples), figsize=(1.6 * len(samples), 2))
for ax, sample, guess in zip(axes, samples, logits.argmax(1)):
    ax.imshow(((sample['image'] * STD + MEAN) / 255).clamp(0, 1).permute(1, 2, 0))
    truth = dataset.classes[sample['label']]
    ax.set_title(
        f'{dataset.classes[guess]}\n({truth})',
        fontsize=8,
        color='green' if guess == sample['label'] else 'red',
    )
    ax.set_axis_off()
fig.suptitle('predicted (true)', fontsize=9)
fig.tight_layout()

# %%
# With ``torchgeo fit``
# ---------------------
# The same fine-tuning from the command line is a config; ``configs/finetune/ucmerced.yaml``
# is the paper's UC Merced run (:doc:`/user_guide/downstream`). Export the fine-tuned
# checkpoint to whole scenes with ``torchgeo-gfm predict`` (:doc:`/scene`).
