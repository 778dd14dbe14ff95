# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Lightning tasks: GFM continual pretraining, and downstream tasks TorchGeo lacks."""

from .._deprecated import renamed
from .change import ChangeDetectionWithFigures
from .continual_pretraining import ContinualPretraining
from .finetune import (
    FinetuneChangeDetection,
    FinetuneClassification,
    FinetuneSemanticSegmentation,
    FinetuneSuperResolution,
    LayerDecayMixin,
)
from .inference import InferenceMetadata, InferenceMetadataMixin
from .multilabel import MultiLabelClassification
from .super_resolution import SuperResolution

__all__ = (
    'ChangeDetectionWithFigures',
    'ContinualPretraining',
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

__getattr__ = renamed(__name__, {'GFM': 'ContinualPretraining'})
