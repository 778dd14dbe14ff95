# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""GFM backbone: timm registration, TorchGeo weights, builder and checkpoint I/O."""

from .adapt import SENTINEL2_RGB_INDICES, adapt_patch_embed, rgb_input_indices
from .baseline import swin_base_in22k  # noqa: F401  (registers the IN-22k baseline with timm)
from .checkpoint import (
    GFMCheckpointError,
    WeightsFormat,
    check_tensors,
    load_backbone,
    load_student_weights,
    load_upstream_checkpoint,
    ms_swin_to_timm,
    prepare_output,
    read_checkpoint,
    read_state_dict,
    save_backbone,
    sniff_format,
    state_dict_from,
    student_state_dict,
    teacher_state_dict,
    upstream_mask_token,
)
from .pretraining import GFMPretrainingModel
from .registry import register as _register
from .super_resolution import SuperResolutionModel, UpsamplingHead
from .swin import (
    GFMSwinTransformer,
    check_complete_student,
    gfm_swin_base,
    load_gfm_weights,
    loadable_state_dict,
)
from .weights import GFM_Weights, gfm_swin_b

_register()

__all__ = (
    'SENTINEL2_RGB_INDICES',
    'GFMCheckpointError',
    'GFMPretrainingModel',
    'GFMSwinTransformer',
    'GFM_Weights',
    'SuperResolutionModel',
    'UpsamplingHead',
    'WeightsFormat',
    'adapt_patch_embed',
    'check_complete_student',
    'check_tensors',
    'gfm_swin_b',
    'gfm_swin_base',
    'load_backbone',
    'load_gfm_weights',
    'load_student_weights',
    'load_upstream_checkpoint',
    'loadable_state_dict',
    'ms_swin_to_timm',
    'prepare_output',
    'read_checkpoint',
    'read_state_dict',
    'rgb_input_indices',
    'save_backbone',
    'sniff_format',
    'state_dict_from',
    'student_state_dict',
    'teacher_state_dict',
    'upstream_mask_token',
)
