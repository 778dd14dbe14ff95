# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

# sphinx-gallery: the docstring is the page title and introduction (reST), and the script
# reads as a tutorial: pydocstyle does not apply.
# ruff: noqa: D205, D212, D415

"""
Continue pretraining on your own imagery
========================================

GFM's recipe is *continual* pretraining: a student learns from your images by masked-image
modelling (reconstruct the 60 % of the image that is hidden) while it is distilled towards a
frozen teacher's features. :class:`~torchgeo_gfm.tasks.ContinualPretraining` is that recipe,
:class:`~torchgeo_gfm.datamodules.GeoPileDataModule` reads any folder in GeoPile's layout.

This tutorial runs the whole loop on a CPU in seconds: it writes a small set of images,
pretrains a **tiny** student against a tiny, **randomly initialised** teacher for a few
steps, continues from the checkpoint, and exports the student as backbone weights. The real
run is the same with ``configs/gfm.yaml`` (Swin-B student, ImageNet-22k Swin-B teacher):
:doc:`/user_guide/pretraining`.
"""

# %%
# Your imagery, in GeoPile's layout
# ---------------------------------
# ``root/<source>/<class>/<image>``: one folder per source, sub-folders per class (labels are
# not used for pretraining; a single class folder is fine). Here the images are generated.

import tempfile
from pathlib import Path

import lightning.pytorch as pl
import matplotlib.pyplot as plt
import pandas as pd
import timm
import torch
from lightning.pytorch.loggers import CSVLogger

from torchgeo_gfm.cli import main as torchgeo_gfm_cli
from torchgeo_gfm.datamodules import GeoPileDataModule
from torchgeo_gfm.datasets import GeoPile, write_synthetic_geopile
from torchgeo_gfm.tasks import ContinualPretraining
from torchgeo_gfm.tasks.continual_pretraining import plot_reconstruction

workdir = Path(tempfile.mkdtemp())
root = write_synthetic_geopile(workdir / 'imagery', images_per_class=1, sizes=(128,))
print(GeoPile(root).counts)

# %%
# The data and the task
# ---------------------
# The datamodule crops (RandomResizedCrop), flips and normalises on the device; here at
# 96 px instead of the paper's 192. The student is GFM's architecture, shrunk (width 32, one
# block per stage); the teacher is a tiny Swin with random weights
# (``teacher_weights=None``), which only makes sense in a demo: the real teacher is
# timm's ``swin_base_patch4_window7_224.ms_in22k`` (``teacher_weights=True``).

datamodule = GeoPileDataModule(
    root=root, batch_size=8, num_workers=0, size=96, load_size=128
)
tiny_student = {'embed_dim': 32, 'depths': (1, 1, 1, 1), 'num_heads': (1, 2, 4, 8)}
task = ContinualPretraining(
    model='gfm_swin_base',
    model_kwargs={**tiny_student, 'window_size': 6},
    teacher='swin_tiny_patch4_window7_224',
    teacher_weights=None,
    teacher_kwargs={'embed_dim': 32, 'depths': (1, 1, 2, 1), 'num_heads': (1, 2, 4, 8)},
    teacher_size=112,
    lr=1e-3,
    warmup_lr=1e-5,
    min_lr=1e-4,
    warmup_epochs=1,
    lr_batch_ref=8,
    plot_every_n_steps=1000,
)
print(
    f'student: {sum(p.numel() for p in task.model.student.parameters()):,} parameters'
)


def trainer(max_steps: int, version: int) -> pl.Trainer:
    """A CPU trainer that logs to CSV."""
    return pl.Trainer(
        max_steps=max_steps,
        accelerator='cpu',
        default_root_dir=workdir / 'run',
        logger=CSVLogger(workdir / 'run', name='gfm', version=version),
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=1,
    )


first = trainer(max_steps=4, version=0)
first.fit(task, datamodule=datamodule)
checkpoint = workdir / 'run' / 'after-4-steps.ckpt'
first.save_checkpoint(checkpoint)

# %%
# Continue from a checkpoint
# --------------------------
# ``ckpt_path`` resumes everything: weights, optimiser, schedule and, mid-epoch, the exact
# place in the data (``torchgeo fit ... --ckpt_path last`` does the same). Checkpoints leave
# out the frozen teacher, which is rebuilt. To continue from the **authors'** released
# ``gfm.pth`` instead, pass ``upstream_checkpoint='gfm.pth'`` to the task.

second = trainer(max_steps=8, version=1)
second.fit(task, datamodule=datamodule, ckpt_path=checkpoint, weights_only=True)
second.save_checkpoint(workdir / 'run' / 'after-8-steps.ckpt')

metrics = pd.concat(
    pd.read_csv(workdir / 'run' / 'gfm' / f'version_{v}' / 'metrics.csv')
    for v in (0, 1)
)
losses = metrics.dropna(subset=['train_loss']).groupby('step').last()
fig, ax = plt.subplots(figsize=(6, 3))
for column, label in [
    ('train_loss', 'total'),
    ('train_loss_mim', 'MIM (L1, masked pixels)'),
    ('train_loss_distill', 'distillation (-cos)'),
]:
    if column in losses:
        ax.plot(losses.index, losses[column], marker='o', label=label)
ax.axvline(3.5, color='grey', linestyle='--')
ax.text(3.6, ax.get_ylim()[1], ' resumed', va='top', color='grey')
ax.set_xlabel('step')
ax.set_ylabel('loss')
ax.legend(fontsize=8)
fig.tight_layout()
print(losses.filter(like='loss').round(3).to_string())

# %%
# What the student reconstructs
# -----------------------------
# The task draws a mask (``mask_ratio=0.6`` of 32 px blocks) and reconstructs the hidden
# pixels. After eight steps on a tiny model the reconstruction is only a blur of the right
# colours; the figures the task writes during a real run (``plot_dir``) sharpen over epochs.

batch = datamodule.on_after_batch_transfer(next(iter(datamodule.train_dataloader())), 0)
images = batch['image'][:4]
task.eval()
with torch.inference_mode():
    mask = task.draw_mask(images, generator=torch.Generator().manual_seed(0))
    reconstruction, _, _ = task.model(images, mask)
fig = plot_reconstruction(
    images, mask, reconstruction, task.hparams['mean'], task.hparams['std']
)

# %%
# Export the student
# ------------------
# ``torchgeo-gfm export`` keeps the student (timm ``gfm_swin_base`` key names) in a
# safetensors file; timm, smp (``tu-gfm_swin_base``) and TorchGeo load it like the published
# weights. A real run's student is Swin-B, loaded with
# ``gfm_swin_b(weights='student.safetensors')``; this one needs its smaller shape too.

student_file = workdir / 'student.safetensors'
torchgeo_gfm_cli(
    ['export', str(workdir / 'run' / 'after-8-steps.ckpt'), str(student_file)]
)
backbone = timm.create_model(
    'gfm_swin_base',
    pretrained=True,
    pretrained_cfg_overlay={'file': str(student_file)},
    num_classes=0,
    **tiny_student,
)
print(type(backbone).__name__, backbone(torch.zeros(1, 3, 96, 96)).shape)
