# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

# sphinx-gallery: the docstring is the page title and introduction (reST), and the script
# reads as a tutorial: pydocstyle does not apply.
# ruff: noqa: D102, D107, D205, D212, D415

"""
Use GFM features in your own model
==================================

GFM's student is a Swin-B. ``import torchgeo_gfm.models`` registers it with timm as
``gfm_swin_base``; :func:`~torchgeo_gfm.models.gfm_swin_b` builds it TorchGeo style. This
tutorial builds the backbone as a feature extractor, puts a small head of your own on it,
feeds it more bands than RGB (GFM's band rule), and looks at what its features see.

To stay offline and fast, the backbone here is **randomly initialised**. With the
published weights, change one argument::

    backbone = gfm_swin_b(GFM_Weights.GEOPILE_RGB_GFM, features_only=True)

(the file is downloaded once from the Hugging Face Hub, ``torchgeo/gfm``).
"""

# %%
# An image to look at
# -------------------
# :func:`~torchgeo_gfm.datasets.write_synthetic_geopile` writes small procedural images in
# GeoPile's folder layout (fields, urban, water, forest, roads). They are not real imagery,
# but they have structure at several scales, which is all this tutorial needs.

import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from torch import nn

import torchgeo_gfm.models  # noqa: F401  (registers gfm_swin_base with timm and smp)
from torchgeo_gfm.datasets import write_synthetic_geopile
from torchgeo_gfm.datasets.utils import read_rgb
from torchgeo_gfm.models import adapt_patch_embed, gfm_swin_b

torch.manual_seed(0)
root = write_synthetic_geopile(
    Path(tempfile.mkdtemp()) / 'pile', images_per_class=1, formats=False
)
path = min(root.glob('*/urban/*'))
image = read_rgb(path, size=192)  # uint8 [3, 192, 192]
print(path.relative_to(root), tuple(image.shape), image.dtype)

# %%
# The backbone as a feature extractor
# -----------------------------------
# ``features_only=True`` returns the four Swin stages (strides 4, 8, 16, 32; widths 128,
# 256, 512, 1024), channels last as timm's Swin computes them. GFM was trained on
# ImageNet-normalised RGB at 192 px, window 6; any size works (it is padded to windows).

backbone = gfm_swin_b(features_only=True).eval()
mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1) * 255
std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1) * 255
x = (image[None].float() - mean) / std

with torch.inference_mode():
    features = backbone(x)
for info, f in zip(backbone.feature_info.get_dicts(), features):
    print(f'{info["module"]:>8}  stride {info["reduction"]:>2}  {tuple(f.shape)}')

# %%
# Your own model on top
# ---------------------
# Any head works. This one classifies scenes from the pooled last stage, and keeps a
# second output, a coarse map from stage 3, to show that every stage is available.


class SceneAndMap(nn.Module):
    """A GFM backbone with a scene classifier and a coarse per-pixel head."""

    def __init__(self, backbone: nn.Module, num_classes: int) -> None:
        super().__init__()
        self.backbone = backbone
        widths = backbone.feature_info.channels()
        self.classify = nn.Linear(widths[3], num_classes)
        self.segment = nn.Conv2d(widths[2], num_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        stages = [f.permute(0, 3, 1, 2) for f in self.backbone(x)]  # NHWC -> NCHW
        scene = self.classify(stages[3].mean(dim=(2, 3)))
        coarse = self.segment(stages[2])
        return scene, nn.functional.interpolate(coarse, size=x.shape[-2:])


model = SceneAndMap(backbone, num_classes=5).eval()
with torch.inference_mode():
    scene, mask = model(x)
trainable = sum(p.numel() for n, p in model.named_parameters() if 'backbone' not in n)
print('scene logits', tuple(scene.shape), '| mask logits', tuple(mask.shape))
print(
    f'head parameters: {trainable:,} (backbone: {sum(p.numel() for p in backbone.parameters()):,})'
)

# %%
# To fine-tune only the head, freeze the backbone (``backbone.requires_grad_(False)``); to
# fine-tune everything as the paper does, use TorchGeo's tasks with ``gfm_swin_base``
# (:doc:`/backbone`) or the recipe in :mod:`torchgeo_gfm.tasks`.
#
# More bands than RGB: the band rule
# ----------------------------------
# GFM was pretrained on RGB. Asked for ``in_chans=13`` (Sentinel-2 in TorchGeo's band
# order), the loader copies the pretrained R, G, B filters to bands B4, B3, B2 (indices
# 3, 2, 1) and starts every other band at zero, so the 13-band model computes exactly the
# RGB features until fine-tuning teaches it to use the rest.
# :func:`~torchgeo_gfm.models.checkpoint_filter_fn` does this whenever weights are loaded
# (``gfm_swin_b(GFM_Weights.GEOPILE_RGB_GFM, in_chans=13)``); the rule itself is
# :func:`~torchgeo_gfm.models.adapt_patch_embed`, applied here to the RGB filters above.

rgb_filters = backbone.state_dict()['patch_embed.proj.weight']  # [128, 3, 4, 4]
filters = adapt_patch_embed(rgb_filters, in_chans=13)  # [128, 13, 4, 4]
assert torch.equal(filters[:, [3, 2, 1]], rgb_filters)
energy = filters.abs().sum(dim=(0, 2, 3))
print('filter magnitude per band:', [round(e, 1) for e in energy.tolist()])

fig, ax = plt.subplots(figsize=(6, 2.2))
ax.bar(
    range(1, 14),
    energy.numpy(),
    color=['C1' if b in (2, 3, 4) else 'C0' for b in range(1, 14)],
)
ax.set_xticks(
    range(1, 14), [f'B{b}' for b in (1, 2, 3, 4, 5, 6, 7, 8, '8A', 9, 10, 11, 12)]
)
ax.set_ylabel('|filter|')
ax.set_title('patch-embedding filters after the band rule (RGB = B4, B3, B2)')
fig.tight_layout()

# %%
# What the features see
# ---------------------
# A principal-component view of the stage-2 features (stride 8): the three strongest
# directions become red, green and blue. With the published weights the colours follow
# land cover; with this random backbone they still follow the image's structure.


def pca_rgb(feature: torch.Tensor) -> torch.Tensor:
    """The first three principal components of ``[H, W, C]`` features as an image."""
    h, w, c = feature.shape
    flat = feature.reshape(-1, c) - feature.reshape(-1, c).mean(0)
    _, _, v = torch.pca_lowrank(flat, q=3, center=False)
    rgb = (flat @ v).reshape(h, w, 3)
    lo, hi = rgb.amin(dim=(0, 1)), rgb.amax(dim=(0, 1))
    return (rgb - lo) / (hi - lo + 1e-8)


fig, axes = plt.subplots(1, 3, figsize=(9, 3.2))
axes[0].imshow(image.permute(1, 2, 0))
axes[0].set_title('image (192 px)')
axes[1].imshow(pca_rgb(features[1][0]))
axes[1].set_title('stage 2 features (24 x 24)')
axes[2].imshow(mask[0].argmax(0), cmap='tab10', interpolation='nearest')
axes[2].set_title('untrained coarse head')
for ax in axes:
    ax.set_axis_off()
fig.tight_layout()
