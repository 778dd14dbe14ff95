# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""The modules of GFM continual pretraining: SimMIM student, projector, frozen teacher.

:class:`GFMPretrainingModel` holds what the paper trains and what it distils from; the losses
are the functions below. The teacher is a timm Swin cut after a Microsoft stage (the paper),
or any timm model whose features at one of its ``feature_info`` stages are pooled. :class:`~torchgeo_gfm.tasks.ContinualPretraining` is the thin Lightning task around
them (masking, optimisation, logging).

.. versionadded:: 0.1
"""

import math
from typing import Any

import torch
import torch.nn.functional as F
from timm.models.swin_transformer import SwinTransformer
from torch import Tensor, nn


def simmim_mask(
    batch: int,
    grid: tuple[int, int],
    ratio: float,
    scale: int,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Draw SimMIM block masks, one per sample, directly on *device*.

    Exactly ``ceil(ratio * cells)`` of the ``grid`` cells are masked in every sample, as in
    the authors' ``MaskGenerator``; each cell is then repeated ``scale`` times along both axes.

    Args:
        batch: number of masks.
        grid: mask cells along (height, width), i.e. image size // mask patch size.
        ratio: fraction of the cells to mask.
        scale: mask patch size // model patch size.
        device: where to draw the masks.
        generator: optional random generator (reproducible masks).

    Returns:
        ``[batch, grid_h * scale, grid_w * scale]`` float tensor, 1 = masked.

    .. versionadded:: 0.1
    """
    cells = grid[0] * grid[1]
    count = math.ceil(cells * ratio)
    noise = torch.rand(batch, cells, device=device, generator=generator)
    index = noise.argsort(dim=1)[:, :count]
    mask = torch.zeros(batch, cells, device=device).scatter_(1, index, 1.0)
    mask = mask.view(batch, *grid)
    return mask.repeat_interleave(scale, 1).repeat_interleave(scale, 2)


def check_swin(model: nn.Module, stage: int, role: str) -> SwinTransformer:
    """Check that *model* is a timm Swin that has Microsoft stage *stage*.

    Args:
        model: a timm model.
        stage: stage of Microsoft's numbering (1-based, patch merging at the end).
        role: 'student' or 'teacher', used in the error message.

    Returns:
        The model.

    Raises:
        TypeError: if the model is not a timm Swin.
        ValueError: if it lacks the stage.

    .. versionadded:: 0.1
    """
    if not isinstance(model, SwinTransformer):
        raise TypeError(
            f'The {role} {type(model).__name__} is not a timm Swin Transformer; use one '
            "(e.g. 'swin_base_patch4_window7_224' or 'gfm_swin_base')."
        )
    if not 1 <= stage <= len(model.layers):
        raise ValueError(
            f'distill_stage={stage} does not exist in the {role}, which has '
            f'{len(model.layers)} stages: choose 1..{len(model.layers)} (the paper '
            'distills stage 3).'
        )
    return model


def input_bands(model: nn.Module) -> int:
    """The input bands of a timm model: those of its first convolution.

    Args:
        model: a timm model (its ``pretrained_cfg['first_conv']`` names the layer; else
            the first ``Conv2d`` is taken).

    Returns:
        The number of input channels.

    Raises:
        TypeError: if the model has no convolution to read them from.

    .. versionadded:: 0.2
    """
    name = (getattr(model, 'pretrained_cfg', None) or {}).get('first_conv')
    try:
        first = model.get_submodule(name) if isinstance(name, str) else None
    except AttributeError:
        first = None
    if not isinstance(first, nn.Conv2d):
        first = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if first is None:
        raise TypeError(
            f'{type(model).__name__} has no convolution whose input bands could be '
            'checked; use a timm model (Swin, ViT, ResNet, ConvNeXt...) as the teacher.'
        )
    return int(first.in_channels)


def _feature_index(model: nn.Module, stage: int | None) -> int:
    """*stage* (default the last) as an index of timm's ``feature_info``, checked."""
    info = getattr(model, 'feature_info', None)
    if not hasattr(model, 'forward_intermediates') or not isinstance(info, list):
        raise TypeError(
            f'The teacher {type(model).__name__} has no timm forward_intermediates and '
            'feature_info to take a stage from; use a timm model (Swin, ViT, ResNet, '
            'ConvNeXt...).'
        )
    index = -1 if stage is None else stage
    if not -len(info) <= index < len(info):
        raise ValueError(
            f'teacher_stage={stage} does not exist in the teacher '
            f'{type(model).__name__}, whose timm feature_info has {len(info)} stages: '
            f'choose 0..{len(info) - 1} (or -1, the last).'
        )
    return index % len(info)


def stage_width(model: Any, stage: int) -> int:
    """Channels of Microsoft stage *stage*'s output (its trailing patch merging included).

    Args:
        model: a timm Swin.
        stage: stage of Microsoft's numbering (1-based).

    Returns:
        The number of channels.

    .. versionadded:: 0.1
    """
    # timm merges patches at the start of the next stage, Microsoft at the end of this one
    index = min(stage, len(model.layers) - 1)
    return int(model.feature_info[index]['num_chs'])


class GFMPretrainingModel(nn.Module):
    """SimMIM student with a linear decoder and projector, and the frozen teacher.

    The student (a timm Swin) sees the image with masked patch embeddings replaced by a
    learned token; a 1x1 conv + PixelShuffle decodes all its input bands from its last stage.
    Its pooled output of Microsoft stage ``distill_stage`` is projected to the teacher's
    width. The teacher sees the unmasked image (or its true-colour rendering) resized to its
    own size: a Swin is cut after the same Microsoft stage (or ``teacher_stage``), any other
    timm model after its ``feature_info`` stage ``teacher_stage`` (default the last), and
    its feature map is average pooled.

    .. versionadded:: 0.1

    .. versionchanged:: 0.2
       Any timm model as the teacher (``teacher_stage``); the teacher may see other images
       than the student (``teacher_images`` of :meth:`forward`).
    """

    #: the student, a timm Swin (NHWC stages)
    student: Any
    #: the frozen teacher, cut after ``distill_stage``
    teacher: Any

    def __init__(
        self,
        student: nn.Module,
        teacher: nn.Module,
        distill_stage: int = 3,
        teacher_size: int = 224,
        teacher_stage: int | None = None,
    ) -> None:
        """Initialize a new GFMPretrainingModel.

        Args:
            student: a timm Swin (its classifier is not used).
            teacher: a timm model with its weights; it is frozen and cut here.
            distill_stage: distilled stage of the student, Microsoft numbering (1-based);
                3 in the paper.
            teacher_size: side of the images the teacher sees.
            teacher_stage: the teacher's stage: Microsoft numbering for a Swin (default
                *distill_stage*), else an index of its timm ``feature_info`` (default -1).

        Raises:
            TypeError: if the student is not a timm Swin, or the teacher not a timm model
                with ``forward_intermediates``.
            ValueError: if a stage does not exist.
        """
        super().__init__()
        self.student = check_swin(student, distill_stage, 'student')
        self.distill_stage = distill_stage
        self.teacher_size = teacher_size
        embed = int(self.student.patch_embed.proj.out_channels)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, embed))  # the authors' shape
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        patch = int(self.student.patch_embed.patch_size[0])
        self.stride = patch * 2 ** (len(self.student.layers) - 1)
        chans = int(self.student.patch_embed.proj.in_channels)
        self.decoder = nn.Sequential(
            nn.Conv2d(self.student.num_features, self.stride**2 * chans, 1),
            nn.PixelShuffle(self.stride),
        )
        #: the teacher's ``feature_info`` index; None for a Swin (cut at a MS stage)
        self.teacher_index: int | None = None
        if isinstance(teacher, SwinTransformer):
            stage = distill_stage if teacher_stage is None else teacher_stage
            width = self._cut_swin(teacher, stage)
        else:
            other: Any = teacher  # a timm model: feature_info, forward_intermediates
            self.teacher_index = _feature_index(other, teacher_stage)
            width = int(other.feature_info[self.teacher_index]['num_chs'])
            other.prune_intermediate_layers(
                [self.teacher_index], prune_norm=True, prune_head=True
            )
        self.projector = nn.Linear(stage_width(self.student, distill_stage), width)
        self.teacher = teacher.eval().requires_grad_(False)

    @staticmethod
    def _cut_swin(cut: Any, stage: int) -> int:
        """Cut a Swin teacher after Microsoft stage *stage*; its width there."""
        check_swin(cut, stage, 'teacher')
        width = stage_width(cut, stage)
        # keep layers[:stage + 1], then only the patch merging that ends MS stage `stage`
        cut.prune_intermediate_layers(
            [min(stage, len(cut.layers) - 1)], prune_norm=True, prune_head=True
        )
        if stage < len(cut.layers):
            cut.layers[stage].blocks = nn.Sequential()
        return width

    def train(self, mode: bool = True) -> 'GFMPretrainingModel':
        """Set training mode; the teacher always stays in eval mode.

        Args:
            mode: training (True) or evaluation (False).

        Returns:
            This module.
        """
        super().train(mode)
        self.teacher.eval()
        return self

    def forward_student(self, images: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Student forward on the masked image.

        Args:
            images: normalised ``[B, C, H, W]``.
            mask: ``[B, H/p, W/p]`` at the student's patch resolution, 1 = masked.

        Returns:
            The pooled output of ``distill_stage`` ``[B, D]`` and the reconstruction
            ``[B, C, H, W]``.
        """
        x = self.student.patch_embed(images)  # NHWC
        w = mask.unsqueeze(-1).type_as(x)
        x = x * (1.0 - w) + self.mask_token.view(1, 1, 1, -1).type_as(x) * w
        stage, layers = self.distill_stage, self.student.layers
        x = layers[:stage](x)
        # the patch merging that ends MS stage `stage` opens timm's next stage: it runs
        # twice (here and in that stage), a fraction of a percent of the FLOPs
        feature = layers[stage].downsample(x) if stage < len(layers) else x
        x = self.student.norm(layers[stage:](x))
        # NCHW in memory too: a channels-last view gives the 1x1 conv's weight gradient
        # strides DDP's buckets do not have (a warning and a copy every step)
        x = x.permute(0, 3, 1, 2).contiguous()
        return feature.mean(dim=(1, 2)), self.decoder(x)

    @torch.no_grad()
    def forward_teacher(self, images: Tensor) -> Tensor:
        """Pooled teacher feature of the unmasked image resized to ``teacher_size``.

        Args:
            images: normalised ``[B, C, H, W]``.

        Returns:
            ``[B, D_teacher]``.
        """
        size = (self.teacher_size, self.teacher_size)
        if images.shape[-2:] != size:
            images = F.interpolate(images, size, mode='bilinear', align_corners=True)
        if self.teacher_index is None:  # a Swin: NHWC
            return self.teacher.forward_features(images).mean(dim=(1, 2))
        features = self.teacher.forward_intermediates(
            images, indices=[self.teacher_index], intermediates_only=True
        )
        return features[0].mean(dim=(2, 3))  # NCHW

    def forward(
        self, images: Tensor, mask: Tensor, teacher_images: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Reconstruction, projected student feature and teacher target.

        Args:
            images: normalised ``[B, C, H, W]``.
            mask: ``[B, H/p, W/p]`` at the student's patch resolution, 1 = masked.
            teacher_images: what the teacher sees (e.g. the true colour of *images*);
                None = *images*.

        Returns:
            ``[B, C, H, W]`` reconstruction, ``[B, D_teacher]`` projected student feature
            and ``[B, D_teacher]`` teacher feature.
        """
        feature, reconstruction = self.forward_student(images, mask)
        teacher_images = images if teacher_images is None else teacher_images
        target = self.forward_teacher(teacher_images)
        return reconstruction, self.projector(feature), target


def mim_loss(images: Tensor, reconstruction: Tensor, mask: Tensor) -> Tensor:
    """SimMIM's L1 loss over the masked pixels, per channel, in fp32.

    ``sum(|x - x_rec| * M) / (sum(M) + 1e-5) / C``, *M* the mask upsampled to pixels.

    Args:
        images: normalised ``[B, C, H, W]``.
        reconstruction: ``[B, C, H, W]``.
        mask: ``[B, h, w]`` at any resolution dividing the image, 1 = masked.

    Returns:
        The scalar loss.

    .. versionadded:: 0.1
    """
    factor = images.shape[-1] // mask.shape[-1]
    pixels = mask.repeat_interleave(factor, 1).repeat_interleave(factor, 2)
    pixels = pixels.unsqueeze(1).float()
    # fp32 even under autocast: a bf16 sum over ~10^6 pixels is off
    error = F.l1_loss(images.float(), reconstruction.float(), reduction='none')
    return (error * pixels).sum() / (pixels.sum() + 1e-5) / images.shape[1]


def distill_loss(feature: Tensor, target: Tensor) -> Tensor:
    """Negative mean cosine similarity to the (detached) teacher feature, in fp32.

    Args:
        feature: projected student feature ``[B, D]``.
        target: teacher feature ``[B, D]``.

    Returns:
        The scalar loss.

    .. versionadded:: 0.1
    """
    cos = F.cosine_similarity(feature.float(), target.detach().float(), dim=1)
    return -cos.mean()
