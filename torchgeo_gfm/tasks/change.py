# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""TorchGeo's change detection task, with validation figures that work on Kornia >= 0.8."""

import torch
from torch import Tensor
from torchgeo.datamodules import BaseDataModule
from torchgeo.datasets import RGBBandsMissingError
from torchgeo.datasets.utils import Sample
from torchgeo.tasks import ChangeDetection as _ChangeDetection

from .._compat import change_detection_step
from .inference import InferenceMetadataMixin
from .utils import log_figure, takes_figures


# Workaround for TorchGeo 0.10.1; drop this class once TorchGeo ships
# upstream/torchgeo/change-detection-figures.patch (figures without K.VideoSequential).
class ChangeDetectionWithFigures(InferenceMetadataMixin, _ChangeDetection):
    """:class:`torchgeo.tasks.ChangeDetection` whose validation figures do not crash.

    TorchGeo 0.10.1 denormalizes the validation batch for its figures with
    ``K.VideoSequential``, which Kornia >= 0.8 rejects for a 2-date image with a
    1-frame mask, so validation fails with any logger that draws figures (TensorBoard,
    and Lightning's ``fast_dev_run``). This task skips that code and draws the figure
    of each validation's first batch itself. Everything else is TorchGeo's.

    .. versionadded:: 0.1
    """

    def validation_step(
        self, batch: Sample, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        """Compute the validation loss and metrics; log a figure of the first batch.

        Args:
            batch: the output of your DataLoader.
            batch_idx: index of this batch.
            dataloader_idx: index of the current dataloader.
        """
        # TorchGeo's step without its (crashing) figure code: torchgeo_gfm._compat entry 2
        change_detection_step(self, batch, batch_idx, 'val')
        if batch_idx == 0:
            self._plot_batch(batch)

    def _plot_batch(self, batch: Sample) -> None:
        # drawing costs time: only for loggers that take figures
        datamodule = getattr(self.trainer, 'datamodule', None)
        if not takes_figures(self.logger) or not isinstance(datamodule, BaseDataModule):
            return
        with torch.no_grad():
            probs: Tensor = self.predict_step(batch, 0)
        if self.hparams['task'] == 'multiclass':
            prediction = probs.argmax(dim=1, keepdim=True)
        else:
            prediction = (probs >= 0.5).long()
        shape = (1, 1, -1, 1, 1)  # [B, T, C, H, W]
        mean = torch.as_tensor(datamodule.mean, device=probs.device).reshape(shape)
        std = torch.as_tensor(datamodule.std, device=probs.device).reshape(shape)
        sample = {
            'image': (batch['image'][0:1] * std + mean)[0].cpu(),
            'mask': batch['mask'][0].cpu(),
            'prediction': prediction[0].cpu(),
        }
        try:
            fig = datamodule.plot(sample)
        except RGBBandsMissingError:
            return
        if fig is not None:
            log_figure(self.logger, 'image/0', fig, self.global_step)
