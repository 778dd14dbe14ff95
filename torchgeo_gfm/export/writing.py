# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Writing exported models: ``torchgeo-gfm export SOURCE -o model.onnx|model.pt2``.

What is exported comes from what the scene engine loads (:mod:`.modules`): a fine-tuned
Lightning checkpoint's whole task (``what='task'``, its default) or its backbone
(``what='backbone'``), the student of a GFM training checkpoint
(:class:`~torchgeo_gfm.tasks.ContinualPretraining`), or backbone weights (a
``torchgeo-gfm convert``/``export`` safetensors file, the authors' ``gfm.pth``, a
:class:`~torchgeo_gfm.models.GFM_Weights` member). The model is traced once with
:func:`torch.export.export` (batch size dynamic unless fixed, tile size fixed), then
written as ONNX (``torch.onnx.export(dynamo=True)``, one self-contained file) or as a
``.pt2`` archive (:func:`torch.export.save`), with its :class:`~.metadata.ExportMetadata`
(ONNX ``metadata_props``, ``.pt2`` extra file).

Files are written as every output of the package (:mod:`torchgeo_gfm.outputs`): checked
before any work (never the source, a folder or a device; an existing file only with
*force*), written under a temporary name in the output's folder, then renamed. Before the
rename the written file is run once (onnxruntime on the CPU, or the reloaded ``.pt2``) on
the example input and compared to eager PyTorch: a difference over :data:`TOLERANCE`
removes it and raises :class:`~.metadata.ExportError`.

.. versionadded:: 0.2
"""

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor

from ..scene.errors import SceneError, first_line
from ..scene.normalisation import SensorLike
from .metadata import EXTRA_FILE, METADATA_KEY, ExportError, ExportMetadata
from .modules import BackboneModule, TaskModule, metadata_for, task_module

#: the formats written, by suffix
FORMATS = ('.onnx', '.pt2')
#: the largest difference allowed between the written file and eager PyTorch (fp32)
TOLERANCE = 1e-4
#: default tile sizes: a window of predict, a chip of embed (GFM's pretraining size)
DEFAULT_TILE = {'task': 512, 'backbone': 192}
#: no tile is smaller (whatever the model's multiple)
MIN_TILE = 16
#: the batch size of the example traced with a dynamic batch (a batch of 1 would be
#: specialised by torch.export)
_EXAMPLE_BATCH = 2
_INSTALL = "pip install 'torchgeo-gfm[export]'"

What = Literal['task', 'backbone']
Module = TaskModule | BackboneModule


def export_model(
    source: Any,
    output: str | os.PathLike[str],
    *,
    what: What | None = None,
    tile: int | None = None,
    batch: int | None = None,
    stage: int = 4,
    opset: int | None = None,
    force: bool = False,
    sensor: SensorLike | None = None,
) -> Path:
    """Export a checkpoint's task or a backbone to ONNX or ``.pt2`` (see the module).

    Args:
        source: a fine-tuned Lightning checkpoint, a GFM training checkpoint, backbone
            weights (a file, a :class:`~torchgeo_gfm.models.GFM_Weights` member or its
            name).
        output: the ``.onnx`` or ``.pt2`` file to write (missing folders are created).
        what: ``'task'`` (the default for a fine-tuned checkpoint: the whole model) or
            ``'backbone'`` (the only choice for weights and GFM training checkpoints).
        tile: the tile size the file takes (default 512 for a task, 192 for a
            backbone): a multiple of the model's size multiple, at least 16; export
            again for more sizes.
        batch: the only batch size the file takes (other sizes are refused by
            onnxruntime and torch.export alike); None (default): any.
        stage: the Swin stage (1-4) whose features a backbone gives.
        opset: the ONNX opset (default: the exporter's).
        force: replace an existing *output*.
        sensor: the sensor of the inputs, for a source that records none (a shipped
            name such as ``'s2'``, a YAML file, a dict or a Sensor).

    Returns:
        The written path.

    Raises:
        ExportError: for a bad argument, or a model that cannot be exported or whose
            file does not compute what PyTorch does; nothing is written.
        SceneError: if *source* cannot be read or is not what *what* asks for.
        OutputError: if *output* is refused (exists without *force*, is the source, a
            folder or a device).

    .. versionadded:: 0.2
    """
    from ..models.checkpoint import prepare_output, sha256sum
    from ..outputs import atomic_output

    suffix = _format(output)
    _check_options(what, tile, batch, stage, opset)
    if suffix == '.onnx':
        _require('onnx', 'onnxruntime', 'onnxscript')
    path = _source_path(source)
    _precheck(output, path, force)
    module = _load(path, what, stage, sensor).float().eval().cpu()
    kind = 'backbone' if isinstance(module, BackboneModule) else 'task'
    size = check_tile(DEFAULT_TILE[kind] if tile is None else tile, _multiple(module))
    out = Path(prepare_output(output, path, force=force))  # creates missing folders
    meta = metadata_for(
        module, tile=size, batch=batch, source=path, source_sha256=sha256sum(path)
    )
    example = _example(meta)
    with torch.no_grad():
        expected = _as_tuple(module(*example))
    program = _trace(module, example, batch, path)
    with atomic_output(out, suffix=suffix) as tmp:
        if suffix == '.onnx':
            _write_onnx(program, example, meta, opset, tmp)
        else:
            torch.export.save(program, tmp, extra_files={EXTRA_FILE: meta.to_json()})
        _verify(tmp, suffix, meta, example, expected, out)
    return out


def check_tile(tile: int, multiple: int) -> int:
    """Refuse a tile size the model cannot take, naming the nearest it can.

    Args:
        tile: the size asked for.
        multiple: the model's size multiple.

    Returns:
        *tile*.

    Raises:
        ExportError: if *tile* is not a multiple of *multiple* of at least
            max(*multiple*, 16).

    .. versionadded:: 0.2
    """
    smallest = multiple * -(-MIN_TILE // multiple)
    if tile >= smallest and tile % multiple == 0:
        return tile
    below, above = tile // multiple * multiple, -(-tile // multiple) * multiple
    near = sorted({max(below, smallest), max(above, smallest)})
    raise ExportError(
        f'--tile {tile}: the model takes tiles of multiples of {multiple} from '
        f'{smallest}: {" or ".join(map(str, near))}; export once for each tile size '
        'you need'
    )


def describe(meta: ExportMetadata) -> str:
    """One line: what an exported model takes and gives.

    Args:
        meta: its metadata.

    Returns:
        E.g. ``segmentation (multiclass): image [N, 3, 512, 512] raw values ->
        probabilities [N, 2, 512, 512]; per pixel ...``.

    .. versionadded:: 0.2
    """
    n = 'N' if meta.batch is None else str(meta.batch)
    inputs = ', '.join(
        f'{name} [{n}, {meta.in_channels}, {meta.tile}, {meta.tile}]'
        for name in meta.inputs
    )
    side = meta.tile * meta.scale // meta.stride
    shapes = {
        'features': f'[{n}, {meta.channels}, {side}, {side}]',
        'embedding': f'[{n}, {meta.channels}]',
    }
    pixels = meta.kind != 'classification'
    default = f'[{n}, {meta.channels}' + (f', {side}, {side}]' if pixels else ']')
    outputs = ', '.join(f'{name} {shapes.get(name, default)}' for name in meta.outputs)
    stage = f', stage {meta.stage}' if meta.stage else ''
    return (
        f'{meta.kind} ({meta.mode}{stage}): {inputs} raw values -> {outputs}; '
        f'{meta.meaning}'
    )


# ---------------------------------------------------------------------------------------
# Checks


def _format(output: str | os.PathLike[str]) -> str:
    suffix = Path(os.fspath(output)).suffix.lower()
    if suffix not in FORMATS:
        raise ExportError(
            f'{os.fspath(output)}: exports are written as ONNX (.onnx) or torch.export '
            '(.pt2); name the output model.onnx or model.pt2'
        )
    return suffix


def _precheck(output: str | os.PathLike[str], path: Path, force: bool) -> None:
    """Refuse an output that exists (without *force*), is the source or a device early.

    Before the model is loaded; its missing folders are created once it is (and its
    tile size checked), so that a refused export leaves no folder behind.
    """
    from ..outputs import check_output

    if Path(os.fspath(output)).absolute().parent.is_dir():
        check_output(output, overwrite=force, protect=[path], option='--force')


def _check_options(
    what: str | None, tile: int | None, batch: int | None, stage: int, opset: int | None
) -> None:
    if what not in (None, 'task', 'backbone'):
        raise ExportError(f"what={what!r}: expected 'task' or 'backbone'")
    for name, value in (('tile', tile), ('batch', batch), ('opset', opset)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            raise ExportError(f'--{name} {value!r}: expected a positive integer')
    if stage not in (1, 2, 3, 4):
        raise ExportError(f'--stage {stage!r}: expected a Swin stage, 1 to 4')


def _require(*modules: str) -> None:
    import importlib.util

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise ExportError(
            f'writing ONNX needs {", ".join(missing)}, which is not installed: {_INSTALL}'
        )


def _multiple(module: Module) -> int:
    from .modules import SWIN_MULTIPLE

    if isinstance(module, BackboneModule):
        return SWIN_MULTIPLE
    return module.predictor.multiple


# ---------------------------------------------------------------------------------------
# The model


def _source_path(source: Any) -> Path:
    """The file of *source*; a GFM_Weights member (or its name) is downloaded."""
    from ..models import GFM_Weights

    if isinstance(source, str | os.PathLike) and not os.path.exists(source):
        source = GFM_Weights.__members__.get(os.fspath(source), source)
    if isinstance(source, GFM_Weights):
        return source.download()
    return Path(os.fspath(source))


def _load(
    path: Path, what: str | None, stage: int, sensor: SensorLike | None
) -> Module:
    """The module to export: the task, the backbone or the student of *path*."""
    from ..models.checkpoint import sniff_format
    from ..scene.checkpoints import is_lightning_checkpoint, read_checkpoint_file

    where = os.fspath(path)
    content = None
    if sniff_format(path) != 'safetensors':
        content = read_checkpoint_file(path)  # refuses missing, unreadable files
    if not is_lightning_checkpoint(content):
        _backbone_only(where, what, 'backbone weights')
        return _weights_backbone(where, stage, sensor)
    assert isinstance(content, dict)
    if _is_pretraining(content):
        _backbone_only(where, what, 'a GFM training checkpoint')
        return _student_backbone(where, stage, sensor)
    if what == 'backbone':
        from ..scene.backbone import load_backbone_for_embedding

        channels = content['hyper_parameters'].get('in_channels', 3)
        return BackboneModule(
            load_backbone_for_embedding(where, stage, channels, sensor=sensor)
        )
    from ..scene.predictor import load_predictor

    return task_module(load_predictor(where, checkpoint=content, sensor=sensor))


def _backbone_only(where: str, what: str | None, is_: str) -> None:
    if what == 'task':
        raise ExportError(
            f'{where}: is {is_}, which holds a backbone, not a fine-tuned task; export '
            'it with --what backbone (its features and embedding), or export the '
            'checkpoint of a task fine-tuned from it'
        )


def _is_pretraining(content: dict[str, Any]) -> bool:
    """Whether a Lightning checkpoint is ContinualPretraining's (it holds a student)."""
    keys = content.get('state_dict') or {}
    return any(str(k).startswith(('model.student.', 'student.')) for k in keys)


def _weights_backbone(where: str, stage: int, sensor: SensorLike | None) -> Module:
    """GFM weights, normalised by their sensor (recorded or given), else RGB."""
    from ..models.checkpoint import GFMCheckpointError, backbone_sensor
    from ..scene.backbone import load_backbone_for_embedding
    from ..scene.normalisation import choose_sensor

    try:
        recorded = backbone_sensor(where)
    except GFMCheckpointError as error:
        raise SceneError(str(error)) from None
    chosen = choose_sensor(recorded, sensor, where)
    channels = chosen.num_bands if chosen is not None else 3
    backbone = load_backbone_for_embedding(where, stage, channels, sensor=sensor)
    return BackboneModule(backbone, channels)


def _student_backbone(where: str, stage: int, sensor: SensorLike | None) -> Module:
    """The student of a GFM training checkpoint, as ``torchgeo-gfm export`` writes it."""
    from ..models import gfm_swin_b
    from ..models.checkpoint import SENSOR_KEY, GFMCheckpointError
    from ..models.gfm_swin import checkpoint_filter_fn
    from ..models.swin_state import describe_swin
    from ..scene.backbone import Backbone
    from ..scene.normalisation import NAMED, choose_sensor
    from ..sensors import get_sensor
    from ..tasks.export import student_from_checkpoint

    try:
        state, info = student_from_checkpoint(where)
    except GFMCheckpointError as error:
        raise SceneError(str(error)) from None
    recorded = info.get(SENSOR_KEY)
    chosen = choose_sensor(
        get_sensor(json.loads(recorded)) if recorded else None, sensor, where
    )
    arch = describe_swin(state)
    channels = int(arch['in_chans'])
    if chosen is None and channels != 3:
        raise ExportError(
            f'{where}: its student takes {channels} bands and the checkpoint records no '
            'sensor; pass --sensor NAME|YAML with the sensor it was trained for'
        )
    if chosen is not None and chosen.num_bands != channels:
        raise ExportError(
            f'{where}: its student takes {channels} bands, sensor {chosen.name} has '
            f'{chosen.num_bands}; pass --sensor with the sensor it was trained for'
        )
    model = gfm_swin_b(
        None,
        embed_dim=arch['embed_dim'],
        depths=arch['depths'],
        num_heads=arch['num_heads'],
        window_size=arch.get('window_size', 6),
        in_chans=channels,
        num_classes=0,
        weight_init='skip',
    )
    body = {k: v for k, v in state.items() if not k.startswith('head.')}
    model.load_state_dict(checkpoint_filter_fn(body, model))
    mean, std = (chosen.mean, chosen.std) if chosen is not None else NAMED['imagenet']
    name = f'student of {where}'
    backbone = Backbone(model.eval(), stage, channels, mean, std, name, chosen)
    return BackboneModule(backbone)


# ---------------------------------------------------------------------------------------
# Tracing, writing, checking


def _example(meta: ExportMetadata) -> tuple[Tensor, ...]:
    """Raw tiles around the normalisation's mean, one per input."""
    gen = torch.Generator().manual_seed(0)
    mean = torch.tensor(meta.mean)[:, None, None]
    std = torch.tensor(meta.std)[:, None, None]
    shape = (meta.batch or _EXAMPLE_BATCH, meta.in_channels, meta.tile, meta.tile)
    return tuple(
        mean + std * torch.randn(shape, generator=gen) for _ in range(meta.images)
    )


def _as_tuple(out: Tensor | Sequence[Tensor]) -> tuple[Tensor, ...]:
    return (out,) if isinstance(out, Tensor) else tuple(out)


def _trace(
    module: Module, example: tuple[Tensor, ...], batch: int | None, path: Path
) -> torch.export.ExportedProgram:
    """The model traced by torch.export: batch dynamic unless fixed, tile fixed."""
    shapes = None
    if batch is None:
        dim = torch.export.Dim('batch', min=1)
        shapes = tuple({0: dim} for _ in example)
    try:
        return torch.export.export(module, example, dynamic_shapes=shapes)
    except Exception as error:  # noqa: BLE001  (the exporter's error, with the file)
        hint = '; try a fixed batch size (--batch N)' if batch is None else ''
        raise ExportError(
            f'{path}: its model cannot be traced by torch.export ({type(error).__name__}:'
            f' {first_line(error)}){hint}'
        ) from None


def _write_onnx(
    program: torch.export.ExportedProgram,
    example: tuple[Tensor, ...],
    meta: ExportMetadata,
    opset: int | None,
    tmp: Path,
) -> None:
    """One self-contained ONNX file (no external data), the metadata in its props."""
    try:
        onnx_program: Any = torch.onnx.export(
            program,
            example,
            dynamo=True,
            input_names=meta.inputs,
            output_names=meta.outputs,
            opset_version=opset,
            external_data=False,
            verbose=False,
        )
    except Exception as error:  # noqa: BLE001  (the exporter's error, with the options)
        raise ExportError(
            f'the model cannot be written as ONNX{f" (opset {opset})" if opset else ""}'
            f' ({type(error).__name__}: {first_line(error)}); try another --opset or '
            'write a .pt2 file'
        ) from None
    written = onnx_program.model.opset_imports.get('')
    if opset is not None and written != opset:  # the converter gave up: say so
        raise ExportError(
            f'--opset {opset}: the exporter cannot convert this model to it (it '
            f'writes opset {written}); ask for {written} or newer, or leave --opset out'
        )
    onnx_program.model.metadata_props[METADATA_KEY] = meta.to_json()
    onnx_program.save(tmp, external_data=False)


def _verify(
    tmp: Path,
    suffix: str,
    meta: ExportMetadata,
    example: tuple[Tensor, ...],
    expected: tuple[Tensor, ...],
    out: Path,
) -> None:
    """Run the written file once; refuse it if it differs from eager PyTorch."""
    if suffix == '.onnx':
        import onnxruntime

        session = onnxruntime.InferenceSession(
            os.fspath(tmp), providers=['CPUExecutionProvider']
        )
        feeds = {name: x.numpy() for name, x in zip(meta.inputs, example, strict=True)}
        got = [torch.from_numpy(y) for y in session.run(meta.outputs, feeds)]
    else:
        with torch.no_grad():
            got = list(_as_tuple(torch.export.load(tmp).module()(*example)))
    for name, a, b in zip(meta.outputs, got, expected, strict=True):
        diff = (a - b).abs().max().item() if a.shape == b.shape else float('inf')
        if not diff <= TOLERANCE:
            raise ExportError(
                f'{out}: not written: the exported {name} differs from PyTorch by '
                f'{diff:.3g} (shape {tuple(a.shape)} vs {tuple(b.shape)}; allowed '
                f'{TOLERANCE}); please report it, with the model and options'
            )
