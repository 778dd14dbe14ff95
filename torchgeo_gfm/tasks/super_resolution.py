# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Super-resolution task: a timm backbone with an upsampling head (TorchGeo has none)."""

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import matplotlib.pyplot as plt
import timm
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import Tensor, nn
from torchgeo.datasets.utils import Sample
from torchgeo.models import get_weight
from torchgeo.tasks import BaseTask
from torchgeo.tasks import utils as task_utils
from torchmetrics import MetricCollection
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure
from torchvision.models import WeightsEnum

from ..models.checkpoint import (
    GFMCheckpointError,
    check_tensors,
    read_checkpoint,
    state_dict_from,
)
from ..models.super_resolution import SuperResolutionModel
from .inference import InferenceMetadataMixin
from .utils import log_figure


def load_backbone_file(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """Backbone weights from a file: safetensors, a state dict, or a TorchGeo checkpoint.

    The format is told from the content, never the name; torch files are read with
    ``weights_only=True``; the weights must be finite floating-point tensors.

    Args:
        path: ``.safetensors`` (e.g. from ``torchgeo-gfm export``), a ``torch.save``'d
            state dict, or a Lightning checkpoint of a TorchGeo task.

    Returns:
        The state dict.

    Raises:
        FileNotFoundError: if *path* does not exist.
        GFMCheckpointError: if it is none of them, or its weights are not finite
            floating-point tensors.

    .. versionadded:: 0.1
    """
    expected = (
        'backbone weights (safetensors, a torch state dict or a Lightning checkpoint '
        'of a TorchGeo task)'
    )
    checkpoint = read_checkpoint(path, expected)
    if isinstance(checkpoint, Mapping) and 'hyper_parameters' in checkpoint:
        try:  # TorchGeo's own extraction (reads the file again, weights_only=True)
            checkpoint = task_utils.extract_backbone(os.fspath(path))[1]
        except (KeyError, TypeError, ValueError) as e:
            raise GFMCheckpointError(
                f'{path}: a Lightning checkpoint without a backbone TorchGeo can extract '
                f'({e}); expected {expected}.'
            ) from None
        return check_tensors(checkpoint, path, expected)
    return state_dict_from(checkpoint, path, expected)


class SuperResolution(InferenceMetadataMixin, BaseTask):
    """Single-image super-resolution with any timm backbone (GFM's Swin-B by default).

    Batches hold a low-resolution ``image`` ``[B, C_in, h, w]`` and a high-resolution
    ``target`` ``[B, C_out, H, W]``, both scaled to [0, 1]. The prediction is resized to
    the target's size when ``scale * h`` differs from ``H`` (e.g. SpaceNet2's 163 px
    multispectral and 650 px pan-sharpened chips). Metrics: PSNR and SSIM on the
    prediction clipped to [0, 1].

    .. versionadded:: 0.1
    """

    monitor = 'val_PSNR'
    mode = 'max'

    def __init__(
        self,
        backbone: str = 'gfm_swin_base',
        weights: WeightsEnum | str | bool | None = None,
        in_channels: int = 8,
        out_channels: int = 8,
        scale: int = 4,
        head_channels: int = 64,
        loss: Literal['l1', 'l2'] = 'l1',
        lr: float = 1e-4,
        patience: int = 10,
        freeze_backbone: bool = False,
        rgb_bands: tuple[int, int, int] | None = (4, 2, 1),
    ) -> None:
        """Initialize a new SuperResolution task.

        Args:
            backbone: name of a timm model with ``forward_intermediates`` (e.g.
                ``gfm_swin_base``, ``swin_base_patch4_window7_224``, ``resnet50``).
            weights: initial backbone weights: a weight enum or its name, True for the
                backbone's timm pretrained weights, False/None for random, or the path
                to a checkpoint/state dict.
            in_channels: bands of the low-resolution input.
            out_channels: bands of the high-resolution target.
            scale: upsampling factor of the head.
            head_channels: width of the upsampling head.
            loss: 'l1' or 'l2' (MSE).
            lr: learning rate.
            patience: patience of the learning-rate scheduler.
            freeze_backbone: train only the head.
            rgb_bands: input/target bands to show as RGB in figures (8-band WorldView-3:
                red 4, green 2, blue 1), None for the first three.
        """
        self.weights = weights
        super().__init__()

    def configure_models(self) -> None:
        """Initialize the model."""
        weights = self.weights
        backbone = timm.create_model(
            self.hparams['backbone'],
            num_classes=0,
            in_chans=self.hparams['in_channels'],
            pretrained=weights is True,
        )
        if weights and weights is not True:
            if isinstance(weights, WeightsEnum):
                state_dict = weights.get_state_dict(progress=True, weights_only=True)
            elif os.path.exists(weights):
                state_dict = load_backbone_file(weights)
            else:
                state_dict = get_weight(weights).get_state_dict(
                    progress=True, weights_only=True
                )
            task_utils.load_state_dict(backbone, state_dict)
        if self.hparams['freeze_backbone']:
            backbone.requires_grad_(False)
        self.model = SuperResolutionModel(
            backbone,
            self.hparams['in_channels'],
            self.hparams['out_channels'],
            self.hparams['scale'],
            self.hparams['head_channels'],
        )

    def configure_losses(self) -> None:
        """Initialize the loss criterion.

        Raises:
            ValueError: for an unknown loss.
        """
        match self.hparams['loss']:
            case 'l1':
                self.criterion: nn.Module = nn.L1Loss()
            case 'l2':
                self.criterion = nn.MSELoss()
            case other:
                raise ValueError(f"loss must be 'l1' or 'l2', got {other!r}")

    def configure_metrics(self) -> None:
        """Initialize PSNR and SSIM (data range 1: targets are in [0, 1])."""
        metrics = MetricCollection(
            {
                'PSNR': PeakSignalNoiseRatio(data_range=1.0),
                'SSIM': StructuralSimilarityIndexMeasure(data_range=1.0),
            }
        )
        self.train_metrics = metrics.clone(prefix='train_')
        self.val_metrics = metrics.clone(prefix='val_')
        self.test_metrics = metrics.clone(prefix='test_')

    def predict_target(self, image: Tensor, size: tuple[int, int]) -> Tensor:
        """Super-resolve and resize to the target's size.

        Args:
            image: low-resolution batch.
            size: (height, width) of the target.

        Returns:
            The prediction (not clipped).
        """
        y_hat: Tensor = self(image)
        if y_hat.shape[-2:] != size:
            y_hat = F.interpolate(y_hat, size=size, mode='bicubic', align_corners=False)
        return y_hat

    def _shared_step(self, batch: Sample, stage: str) -> tuple[Tensor, Tensor]:
        target = batch['target']
        h, w = target.shape[-2:]
        y_hat = self.predict_target(batch['image'], (h, w))
        loss: Tensor = self.criterion(y_hat, target)
        batch_size = target.shape[0]
        self.log(f'{stage}_loss', loss, batch_size=batch_size)
        metrics = getattr(self, f'{stage}_metrics')
        metrics.update(y_hat.detach().clamp(0, 1), target)
        self.log_dict(metrics, batch_size=batch_size)
        return loss, y_hat

    def training_step(
        self, batch: Sample, batch_idx: int, dataloader_idx: int = 0
    ) -> Tensor:
        """Compute the training loss and metrics.

        Args:
            batch: the output of your DataLoader.
            batch_idx: index of this batch.
            dataloader_idx: index of the current dataloader.

        Returns:
            The loss.
        """
        return self._shared_step(batch, 'train')[0]

    def validation_step(
        self, batch: Sample, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        """Compute the validation loss and metrics; log a figure of the first batch.

        Args:
            batch: the output of your DataLoader.
            batch_idx: index of this batch.
            dataloader_idx: index of the current dataloader.
        """
        _, y_hat = self._shared_step(batch, 'val')
        if batch_idx == 0 and self.logger and not self.trainer.sanity_checking:
            fig = self.plot(batch['image'][0], batch['target'][0], y_hat[0])
            log_dir = getattr(self.logger, 'log_dir', None)
            directory = Path(log_dir, 'figures') if log_dir else None
            log_figure(
                self.logger, 'val/super_resolution', fig, self.global_step, directory
            )

    def test_step(self, batch: Sample, batch_idx: int, dataloader_idx: int = 0) -> None:
        """Compute the test loss and metrics.

        Args:
            batch: the output of your DataLoader.
            batch_idx: index of this batch.
            dataloader_idx: index of the current dataloader.
        """
        self._shared_step(batch, 'test')

    def predict_step(
        self, batch: Sample, batch_idx: int, dataloader_idx: int = 0
    ) -> Tensor:
        """Super-resolve a batch.

        Args:
            batch: the output of your DataLoader.
            batch_idx: index of this batch.
            dataloader_idx: index of the current dataloader.

        Returns:
            The prediction clipped to [0, 1], at ``scale`` times the input size.
        """
        return self(batch['image']).clamp(0, 1)

    def plot(self, image: Tensor, target: Tensor, prediction: Tensor) -> Figure:
        """Figure of the input (bicubic), the prediction and the target, as RGB.

        Args:
            image: low-resolution input ``[C_in, h, w]`` in [0, 1].
            target: high-resolution target ``[C_out, H, W]`` in [0, 1].
            prediction: prediction ``[C_out, H, W]``.

        Returns:
            The figure.
        """
        size = tuple(target.shape[-2:])
        upsampled = F.interpolate(image[None].float(), size=size, mode='bicubic')[0]
        panels = {
            'Input (bicubic)': upsampled,
            'Prediction': prediction,
            'Target': target,
        }
        fig, axs = plt.subplots(1, 3, figsize=(12, 4))
        for ax, (title, x) in zip(axs, panels.items()):
            ax.imshow(self._rgb(x.detach().float().cpu()))
            ax.set_title(title)
            ax.axis('off')
        return fig

    def _rgb(self, x: Tensor) -> Any:
        bands = self.hparams['rgb_bands']
        if bands is None or max(bands) >= x.shape[0]:
            bands = (0, 1, 2) if x.shape[0] >= 3 else (0, 0, 0)
        return x[list(bands)].clamp(0, 1).permute(1, 2, 0).numpy()
