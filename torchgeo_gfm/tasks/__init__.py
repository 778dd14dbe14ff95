# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Lightning tasks: GFM continual pretraining, and downstream tasks TorchGeo lacks."""

from .change import ChangeDetectionWithFigures
from .finetune import (
    FinetuneChangeDetection,
    FinetuneClassification,
    FinetuneSemanticSegmentation,
    FinetuneSuperResolution,
    LayerDecayMixin,
)
from .gfm import GFM
from .inference import InferenceMetadata, InferenceMetadataMixin
from .multilabel import MultiLabelClassification
from .super_resolution import SuperResolution

__all__ = (
    'GFM',
    'ChangeDetectionWithFigures',
    'FinetuneChangeDetection',
    'FinetuneClassification',
    'FinetuneSemanticSegmentation',
    'FinetuneSuperResolution',
    'InferenceMetadata',
    'InferenceMetadataMixin',
    'LayerDecayMixin',
    'MultiLabelClassification',
    'SuperResolution',
)
