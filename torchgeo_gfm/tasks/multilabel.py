# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Multi-label classification with mean average precision, the BigEarthNet metric."""

from torchgeo.tasks import Classification
from torchmetrics.classification import MultilabelAveragePrecision

from .inference import InferenceMetadataMixin


class MultiLabelClassification(InferenceMetadataMixin, Classification):
    """TorchGeo's :class:`~torchgeo.tasks.Classification` plus mAP for multi-label tasks.

    Logs ``{stage}_mAP``: average precision over all (sample, label) pairs, as GFM's
    code computes it (``torchmetrics.AveragePrecision(task='binary')`` on the flat
    outputs), but over the whole epoch rather than averaged per batch; and
    ``{stage}_mAP_macro``: the mean of the per-label average precisions.

    .. versionadded:: 0.1
    """

    def configure_metrics(self) -> None:
        """Initialize TorchGeo's metrics and, for ``task='multilabel'``, mAP."""
        super().configure_metrics()
        if self.hparams['task'] != 'multilabel':
            return
        num_labels = self.hparams['num_labels']
        for stage in ('train', 'val', 'test'):
            getattr(self, f'{stage}_metrics').add_metrics(
                {
                    'mAP': MultilabelAveragePrecision(num_labels, average='micro'),
                    'mAP_macro': MultilabelAveragePrecision(
                        num_labels, average='macro'
                    ),
                }
            )
