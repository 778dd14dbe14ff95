# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""The checks of an exported file's metadata that both formats share.

:func:`~torchgeo_gfm.export.load_exported` reads what a file says about itself
(:mod:`.metadata`) before anything else, refuses the other kind of model than the command
wants (:func:`check_expect`), then reads the graph and refuses one that is not what the
metadata says (:func:`check_signature`): a file changed after export, whose tiles or
outputs the scene engine would otherwise get wrong. :func:`check_sensor` refuses a
recorded sensor that does not fit the model.

.. versionadded:: 0.2
"""

from ..sensors import Sensor, SensorError, get_sensor
from .metadata import ExportError, ExportMetadata

# a graph's input or output shape (a dimension is None where it is dynamic, the whole
# shape where the graph does not say)
Shape = tuple[int | None, ...] | None
# a graph's inputs or outputs, as names (None where the graph has none) and shapes
Signature = list[tuple[str | None, Shape]]


def check_expect(meta: ExportMetadata, expect: str | None, where: str) -> None:
    """Refuse a backbone where a task is expected, and the other way round.

    Args:
        meta: the file's metadata.
        expect: 'task', 'backbone' or None (either).
        where: the file, named in the message.

    Raises:
        ExportError: saying which command or export fits the file.

    .. versionadded:: 0.2
    """
    if expect is None:
        return
    if expect not in ('task', 'backbone'):
        raise ExportError(f"expect={expect!r}: expected 'task', 'backbone' or None")
    if expect == 'task' and meta.kind == 'backbone':
        raise ExportError(
            f'{where}: is an exported backbone (features), not a fine-tuned task: use '
            'embed --weights, or export the fine-tuned task with --what task'
        )
    if expect == 'backbone' and meta.kind != 'backbone':
        raise ExportError(
            f'{where}: is an exported {meta.kind} task, not a backbone: use predict, or '
            'export the backbone with --what backbone'
        )


def check_sensor(meta: ExportMetadata, where: str) -> Sensor | None:
    """The recorded sensor, which must have the model's bands.

    Args:
        meta: the file's metadata.
        where: the file, named in the message.

    Returns:
        The sensor, or None where none is recorded.

    Raises:
        ExportError: for a sensor that is not valid or has another number of bands.

    .. versionadded:: 0.2
    """
    if meta.sensor is None:
        return None
    try:
        sensor = get_sensor(meta.sensor)
    except SensorError as error:
        raise ExportError(
            f'{where}: its metadata sensor is not valid ({error}); export it again'
        ) from None
    if sensor.num_bands != meta.in_channels:
        raise ExportError(
            f'{where}: its metadata sensor {sensor.name} has {sensor.num_bands} bands, '
            f'in_channels is {meta.in_channels}; export it again'
        )
    return sensor


def first_output(meta: ExportMetadata) -> tuple[int | None, ...]:
    """The shape of the first output, as the metadata describes it.

    Args:
        meta: the file's metadata.

    Returns:
        ``[batch, K]`` per chip, ``[batch, D, tile / stride, tile / stride]`` features,
        else ``[batch, K, tile * scale, tile * scale]``; batch None where dynamic.

    .. versionadded:: 0.2
    """
    k, t = meta.channels, meta.tile
    if meta.kind == 'classification':
        return (meta.batch, k)
    if meta.kind == 'backbone':
        return (meta.batch, k, t // meta.stride, t // meta.stride)
    return (meta.batch, k, t * meta.scale, t * meta.scale)


def check_signature(
    meta: ExportMetadata, where: str, inputs: Signature, outputs: Signature
) -> None:
    """Refuse a graph whose inputs or outputs are not what its metadata says.

    Names are compared where the graph has them (ONNX); a dimension that is dynamic in
    the graph (None) is not compared, but the batch must be dynamic in both or the same.

    Args:
        meta: the file's metadata.
        where: the file, named in the message.
        inputs: the graph's inputs.
        outputs: the graph's outputs.

    Raises:
        ExportError: naming what differs.

    .. versionadded:: 0.2
    """
    names = [name for name, _ in inputs]
    if len(names) != len(meta.inputs) or (None not in names and names != meta.inputs):
        raise _disagree(where, 'takes inputs', names, meta.inputs)
    image = (meta.batch, meta.in_channels, meta.tile, meta.tile)
    for name, shape in inputs:
        _compare(where, f'input {name or ""}'.strip(), shape, image)
    names = [name for name, _ in outputs]
    if len(names) != len(meta.outputs) or (None not in names and names != meta.outputs):
        raise _disagree(where, 'gives outputs', names, meta.outputs)
    _compare(where, f'output {meta.outputs[0]}', outputs[0][1], first_output(meta))


def _compare(where: str, what: str, shape: Shape, said: tuple[int | None, ...]) -> None:
    """Compare a graph shape with the metadata's, where both are known."""
    if shape is None:
        return
    show = [d if d is not None else 'batch' for d in shape]
    expected = [d if d is not None else 'batch' for d in said]
    if len(shape) != len(said):
        raise _disagree(where, f'{what} is', show, expected)
    for i, (a, b) in enumerate(zip(shape, said, strict=True)):
        if i == 0 and a != b:  # the batch: dynamic (None) in both, or the same number
            batches = (a or 'any size', b or 'any size')
            raise _disagree(where, f'{what} takes batches of', *batches)
        if a is not None and b is not None and a != b:
            raise _disagree(where, f'{what} is', show, expected)


def _disagree(where: str, what: str, graph: object, said: object) -> ExportError:
    """The error for a graph that is not what its metadata says."""
    return ExportError(
        f'{where}: its graph {what} {graph}, its metadata says {said}; the file was '
        'changed after export: export it again'
    )
