# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""The GFM model family (timm, smp and TorchGeo), checkpoint I/O and the method's modules."""

from .bands import SENTINEL2_RGB_INDICES, adapt_patch_embed, rgb_input_indices
from .baseline import swin_base_in22k  # noqa: F401  (registers the IN-22k baseline with timm)
from .checkpoint import (
    GFMCheckpointError,
    WeightsFormat,
    backbone_sensor,
    check_tensors,
    load_backbone,
    load_upstream_checkpoint,
    prepare_output,
    read_checkpoint,
    read_gfm_weights,
    read_state_dict,
    save_backbone,
    sha256sum,
    sniff_format,
    state_dict_from,
)
from .gfm_swin import (
    GFM_Weights,
    GFMClassifierHead,
    GFMSwinTransformer,
    checkpoint_filter_fn,
    gfm_swin_b,
    gfm_swin_base,
)
from .pretraining import GFMPretrainingModel
from .registry import register as _register
from .smp_encoder import loadable_state_dict
from .super_resolution import SuperResolutionModel, UpsamplingHead
from .swin_state import (
    check_complete_student,
    describe_swin,
    student_state_dict,
    teacher_state_dict,
    upstream_mask_token,
)

_register()

__all__ = (
    'SENTINEL2_RGB_INDICES',
    'GFMCheckpointError',
    'GFMClassifierHead',
    'GFMPretrainingModel',
    'GFMSwinTransformer',
    'GFM_Weights',
    'SuperResolutionModel',
    'UpsamplingHead',
    'WeightsFormat',
    'adapt_patch_embed',
    'backbone_sensor',
    'check_complete_student',
    'check_tensors',
    'checkpoint_filter_fn',
    'describe_swin',
    'gfm_swin_b',
    'gfm_swin_base',
    'load_backbone',
    'load_upstream_checkpoint',
    'loadable_state_dict',
    'prepare_output',
    'read_checkpoint',
    'read_gfm_weights',
    'read_state_dict',
    'rgb_input_indices',
    'save_backbone',
    'sha256sum',
    'sniff_format',
    'state_dict_from',
    'student_state_dict',
    'teacher_state_dict',
    'upstream_mask_token',
)
