# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Read an exported ``.pt2`` archive without running what is in it, and run it with PyTorch.

A ``.pt2`` file read by :func:`torch.export.load` alone is not data, in torch 2.14:

* weights and constants of tensor subclasses are read with ``torch.load(...,
  weights_only=False)``, opaque constants with ``pickle.loads`` and TorchBind
  objects with TorchScript's unpickler;
* the example inputs (and a legacy archive's weights) are read with ``weights_only=True``
  and, should that fail, again with ``weights_only=False``;
* symbolic shapes are parsed by ``sympy.sympify``, which evaluates Python;
* the program's ``guards_code`` strings are compiled and run by ``.module()``;
* operators are resolved as attribute chains from ``torch``, ``math`` and ``operator``.

So ``Pt2File`` reads the archive itself first and refuses all of that: entries
other than those ``torch.export.save`` writes for one program, compressed entries, any
pickled payload, example inputs that do not load with ``weights_only=True``, guards and
shape expressions outside small grammars (input sizes and integer arithmetic; SymPy's
constructors of those), operators other than ``torch.ops.aten`` and a few arithmetic
functions. It then hands PyTorch an archive rebuilt from the checked entries, without
the nodes' metadata (free text, such as stack traces, that running needs not), and
checks the operators of the loaded graph again. What is left to trust is PyTorch's JSON
decoder and its aten operators; still, prefer ``.onnx`` for files from others.

.. versionadded:: 0.2
"""

import io
import json
import operator
import re
import zipfile
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ..scene.errors import first_line
from .checks import Shape, Signature
from .metadata import EXTRA_FILE, ExportError, ExportMetadata

__all__ = ('Pt2File',)

#: the entries torch.export.save writes for one program named 'model', under one folder
_ENTRIES = re.compile(
    r'(archive_format|archive_version|byteorder|\.data/version|\.data/serialization_id'
    r'|models/model\.json|data/sample_inputs/model\.pt'
    r'|data/weights/model_weights_config\.json|data/weights/weight_\d+'
    r'|data/constants/model_constants_config\.json|data/constants/tensor_\d+'
    r'|extra/[\w.-]+)'
)
#: the data entries, by their config: where they are and what they are named
_PAYLOADS = (
    ('weights', 'model_weights_config.json', re.compile(r'weight_\d+')),
    ('constants', 'model_constants_config.json', re.compile(r'tensor_\d+')),
)

#: the functions of :mod:`operator` a graph may call: the arithmetic of symbolic sizes
_ARITHMETIC = (
    *('getitem', 'add', 'sub', 'mul', 'floordiv', 'truediv', 'mod', 'neg', 'pow'),
    *('eq', 'ne', 'lt', 'le', 'gt', 'ge'),
)
#: the operators a serialised graph may name: aten's, and the arithmetic of sizes
_OPERATORS = re.compile(
    r'torch\.ops\.aten\.(?!__)\w+\.(?!__)\w+'
    rf'|_operator\.({"|".join(_ARITHMETIC)})'
    r'|torch\.sym_(max|min|int|float|not|ite|sum)|math\.(ceil|floor|trunc)'
)
#: the Python functions a loaded graph may call, besides aten operators
_PYTHON_OPERATORS = {getattr(operator, name) for name in _ARITHMETIC}

#: the tokens of symbolic-shape expressions (sympy.srepr of integer arithmetic)
_SHAPE_TOKENS = re.compile(
    r"\s+|\d{1,18}|[A-Za-z_]\w*|'[a-z]+\d+'|\"[a-z]+\d+\"|[-+*/%(),=]"
)
#: the names a shape expression may use: SymPy's (and PyTorch's) integer arithmetic
_SHAPE_NAMES = frozenset(
    """
    Symbol Integer Add Mul Max Min Mod FloorDiv CeilDiv CleanDiv PythonMod
    ModularIndexing Where TruncToInt FloorToInt CeilToInt IntTrueDiv
    Eq Ne Lt Le Gt Ge StrictLessThan StrictGreaterThan LessThan GreaterThan
    Equality Unequality And Or Not True False
    positive negative nonnegative nonpositive integer real finite zero nonzero
    """.split()  # noqa: SIM905  (a few names a line)
)
#: the tokens of input guards, e.g. ``L['images'][1].size()[0] == L['images'][0].size()[0]``
#: (compiled and run by ``.module()``): sizes of inputs, integers, comparisons
_GUARD_TOKENS = re.compile(
    r" +|\d{1,18}|L\['[A-Za-z_]\w*'\](?:\[\d+\]|\['[A-Za-z_]\w*'\])*"
    r'(?:\.size\(\)\[\d+\]|\.stride\(\)\[\d+\]|\.storage_offset\(\))?'
    r'|==|!=|>=|<=|<|>|//|[-+*%()]|math\.(?:floor|ceil|trunc|isnan)|[a-z]+'
)
_GUARD_NAMES = frozenset(('and', 'or', 'not'))
#: a name, and the name of a size symbol (s0, s1, ...), which any expression may use
_NAME = re.compile(r'[A-Za-z_]\w*')
_SYMBOL = re.compile(r'[a-z]+\d+')


class Pt2File:
    """A ``.pt2`` file, read in the steps of :func:`~torchgeo_gfm.export.load_exported`.

    Attributes:
        where: the file.
        meta: what it says about itself.

    .. versionadded:: 0.2
    """

    def __init__(self, where: str) -> None:
        """Read the archive's entries, refusing any torch.export.save does not write.

        Args:
            where: the file.

        Raises:
            ExportError: if the file is not a readable archive of one program, holds
                other or compressed entries, or lacks this package's metadata.
        """
        self.where = where
        self._prefix, self._entries = _read_archive(where)
        self.meta = ExportMetadata.from_json(
            self._entries.get(f'extra/{EXTRA_FILE}'), where
        )
        self._program: Any = None
        self._batches: tuple[int, int | None] = (1, None)

    def read_graph(self) -> tuple[Signature, Signature]:
        """Check the program, load it with torch.export and give its inputs and outputs.

        Returns:
            The program's user inputs and outputs, unnamed (its names are not the
            metadata's), with their shapes.

        Raises:
            ExportError: if the program holds anything pickled or executable, or
                PyTorch cannot load it.
        """
        entries, self._entries = self._entries, {}
        entries['models/model.json'] = _checked_program(entries, self.where)
        self._program = _load(_rebuild(self._prefix, entries), self.where)
        _check_operators(self._program, self.where)
        inputs, outputs, self._batches = _program_signature(self._program)
        return inputs, outputs

    def open(self, device: torch.device) -> '_TorchExport':
        """The program as a module on *device*, after :meth:`read_graph`.

        Args:
            device: where to run it.

        Returns:
            What runs the graph.

        Raises:
            ExportError: if PyTorch cannot run the program on *device*.
        """
        return _TorchExport(self.where, self._program, device, self._batches)


def _refuse(where: str, what: str) -> ExportError:
    """The error for a .pt2 file this module will not hand to PyTorch."""
    return ExportError(
        f'{where}: {what}; refused: a .pt2 file may hold only what torch.export.save '
        'writes for one program, with no pickled data or code (torch.export.load would '
        'unpickle or run it): export the model again (or use an .onnx file)'
    )


# --- the archive


def _read_archive(where: str) -> tuple[str, dict[str, bytes]]:
    """The archive's folder and its entries (CRC-checked), if only torch.export's."""
    try:
        with zipfile.ZipFile(where) as archive:
            infos = archive.infolist()
            prefix = infos[0].filename.split('/', 1)[0] if infos else ''
            for info in infos:
                _check_entry(info, prefix, where)
            names = [info.filename.partition('/')[2] for info in infos]
            if len(set(names)) != len(names) or 'models/model.json' not in names:
                raise _refuse(where, 'holds no single program named model')
            # zipfile checks each entry's CRC as it reads it
            entries = {
                name: archive.read(info)
                for name, info in zip(names, infos, strict=True)
            }
    except ExportError:
        raise
    except Exception as error:  # noqa: BLE001  (zipfile's many errors for a bad file)
        raise ExportError(
            f'{where}: not a readable .pt2 archive ({first_line(error) or type(error).__name__}'
            '); it is damaged or truncated: export it again'
        ) from None
    return prefix, entries


def _check_entry(info: zipfile.ZipInfo, prefix: str, where: str) -> None:
    """Refuse an entry torch.export.save does not write, or a compressed one."""
    folder, _, rest = info.filename.partition('/')
    if folder != prefix or not _ENTRIES.fullmatch(rest):
        raise _refuse(where, f'holds {info.filename!r}')
    if info.compress_type != zipfile.ZIP_STORED:  # torch stores: no zip bombs
        raise _refuse(where, f'holds {info.filename!r} compressed')


def _rebuild(prefix: str, entries: Mapping[str, bytes]) -> io.BytesIO:
    """A fresh archive of the checked entries, for torch.export.load."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, 'w', zipfile.ZIP_STORED) as archive:
        for name, data in entries.items():
            archive.writestr(f'{prefix}/{name}', data)
    buffer.seek(0)
    return buffer


# --- the program, before PyTorch reads it


def _checked_program(entries: dict[str, bytes], where: str) -> bytes:
    """The program's JSON without node metadata, if nothing in the archive runs code."""
    _check_payloads(entries, where)
    _check_sample(entries, where)
    program = _json(entries, 'models/model.json', where)
    guards = program.get('guards_code') or []
    for guard in guards if isinstance(guards, list) else [guards]:
        _check_tokens(guard, _GUARD_TOKENS, _GUARD_NAMES, where, 'guard')
    _check_json(program, where)
    return json.dumps(program).encode()


def _check_payloads(entries: dict[str, bytes], where: str) -> None:
    """Refuse weights and constants that are pickled (or not stored where listed)."""
    for folder, config, pattern in _PAYLOADS:
        listed = _json(entries, f'data/{folder}/{config}', where)
        payloads = listed.get('config') if isinstance(listed, dict) else None
        if not isinstance(payloads, dict) or not all(
            isinstance(payload, dict) for payload in payloads.values()
        ):
            raise _refuse(where, f'holds a {config} of another form')
        for name, payload in payloads.items():
            file = payload.get('path_name', '')
            if payload.get('use_pickle') is not False or not pattern.fullmatch(file):
                raise _refuse(where, f'stores {folder[:-1]} {name!r} pickled')
            if f'data/{folder}/{file}' not in entries:
                raise _refuse(where, f'lacks the data of {name!r}')


def _check_sample(entries: dict[str, bytes], where: str) -> None:
    """Refuse example inputs that torch.load reads only with ``weights_only=False``."""
    sample = entries.get('data/sample_inputs/model.pt')
    if sample is None:
        raise _refuse(where, 'lacks its example inputs')
    try:
        torch.load(io.BytesIO(sample), weights_only=True)
    except Exception:  # noqa: BLE001  (what a weights-only unpickler refuses)
        raise _refuse(
            where, 'holds example inputs that are not plain tensors'
        ) from None


def _json(entries: dict[str, bytes], name: str, where: str) -> Any:
    """A JSON entry of the archive."""
    try:
        return json.loads(entries[name])
    except (KeyError, ValueError, UnicodeDecodeError):
        raise ExportError(
            f'{where}: its {name} is missing or not JSON; the file is damaged: export '
            'it again'
        ) from None


def _check_json(value: Any, where: str) -> None:
    """Refuse operators and shape expressions that would run code; drop node metadata."""
    if isinstance(value, list):
        for item in value:
            _check_json(item, where)
        return
    if not isinstance(value, dict):
        return
    for key, item in value.items():
        if key == 'nodes' and isinstance(item, list):
            for node in item:
                if isinstance(node, dict):
                    _check_operator(node.get('target'), where)
                    node['metadata'] = {}  # stack traces go into generated source
        elif key == 'as_operator':
            _check_operator(item, where)
        elif key == 'expr_str':  # parsed by sympify, which evaluates Python
            _check_tokens(item, _SHAPE_TOKENS, _SHAPE_NAMES, where, 'shape expression')
        _check_json(item, where)


def _check_operator(target: Any, where: str) -> None:
    """Refuse a serialised operator other than aten's and size arithmetic."""
    if not isinstance(target, str) or not _OPERATORS.fullmatch(target):
        raise _refuse(where, f'calls {str(target)[:80]!r}')


def _check_tokens(
    text: Any, tokens: re.Pattern[str], names: frozenset[str], where: str, what: str
) -> None:
    """Refuse code that is not made of *tokens*, with no name but *names* and symbols."""
    if not isinstance(text, str) or len(text) > 2000 or '**' in text:
        raise _refuse(where, f'holds a {what} {str(text)[:80]!r}')
    end = 0
    for match in tokens.finditer(text):
        token = match.group()
        if match.start() != end or (
            _NAME.fullmatch(token)
            and token not in names
            and not _SYMBOL.fullmatch(token)
        ):
            break
        end = match.end()
    if end != len(text):
        raise _refuse(where, f'holds the {what} {text[:80]!r}')


# --- the program, loaded


def _load(archive: io.BytesIO, where: str) -> Any:
    """The checked archive's program, loaded by torch.export."""
    try:
        return torch.export.load(archive)
    except ImportError as error:  # e.g. sympy, which torch imports for shapes
        missing = error.name or str(error)
        raise ExportError(
            f'{where}: loading a .pt2 file needs {missing!r}, which is not '
            f'installed: pip install {missing}'
        ) from None
    except Exception as error:  # noqa: BLE001  (the deserialiser's many errors)
        raise ExportError(
            f'{where}: PyTorch cannot load it ({type(error).__name__}: '
            f'{first_line(error)}); it is damaged or from another PyTorch version: '
            'export it again (or export an .onnx file)'
        ) from None


def _check_operators(program: Any, where: str) -> None:
    """Refuse a loaded graph calling anything but aten operators and size arithmetic."""
    for module in program.graph_module.modules():
        graph = getattr(module, 'graph', None)
        for node in graph.nodes if graph is not None else ():
            if node.op not in ('call_function', 'call_method', 'call_module'):
                continue
            target = node.target
            aten = (
                isinstance(target, torch._ops.OpOverload) and target.namespace == 'aten'
            )
            if node.op != 'call_function' or not (aten or target in _PYTHON_OPERATORS):
                raise _refuse(where, f'calls {str(target)[:80]!r}')


def _program_signature(
    program: Any,
) -> tuple[Signature, Signature, tuple[int, int | None]]:
    """The program's user inputs and outputs (unnamed) and the batch sizes it takes."""
    nodes = {node.name: node for node in program.graph.nodes}
    placeholders = [nodes[name] for name in program.graph_signature.user_inputs]
    leaves = [nodes.get(str(name)) for name in program.graph_signature.user_outputs]
    # the graph's own names (e.g. images_0) are not the metadata's: compared by count
    inputs: Signature = [(None, _shape(node)) for node in placeholders]
    outputs: Signature = [(None, _shape(node)) for node in leaves]
    first = placeholders[0].meta.get('val') if placeholders else None
    size = first.shape[0] if isinstance(first, torch.Tensor) and first.dim() else 1
    if isinstance(size, int):
        return inputs, outputs, (size, size)
    ranges = program.range_constraints.get(size.node.expr)
    least = int(ranges.lower) if ranges is not None else 1
    upper = ranges.upper if ranges is not None else None
    most = int(upper) if getattr(upper, 'is_Integer', False) else None  # else unbounded
    return inputs, outputs, (max(least, 1), most)


def _shape(node: Any) -> Shape:
    """A graph value's shape; dynamic dimensions are None."""
    value = None if node is None else node.meta.get('val')
    if not isinstance(value, torch.Tensor):
        return None
    return tuple(d if isinstance(d, int) else None for d in value.shape)


# --- torch.export


class _TorchExport:
    """A torch.export program, unlifted to a module on the device."""

    name = 'torch.export'

    def __init__(
        self,
        where: str,
        program: Any,
        device: torch.device,
        batches: tuple[int, int | None],
    ) -> None:
        self.where = where
        self.program = program
        self.batches = batches
        self.module: Any = None
        self.device = device
        self.to(device)

    def to(self, device: torch.device) -> None:
        if self.module is not None and device == self.device:
            return
        if device.type not in ('cpu', 'cuda', 'mps'):
            raise ExportError(f"--device {device}: expected 'cpu', 'cuda' or 'mps'")
        from torch.export.passes import move_to_device_pass

        try:
            program = (
                self.program
                if device.type == 'cpu'
                else move_to_device_pass(self.program, device)
            )
            self.module = program.module()
        except (RuntimeError, AssertionError) as error:
            raise ExportError(
                f'--device {device}: PyTorch cannot run {self.where} there '
                f'({first_line(error)}); pass --device cpu'
            ) from None
        self.device = device

    def run(self, inputs: list[Tensor]) -> list[Tensor]:
        with torch.inference_mode():
            out = self.module(*(x.to(self.device, torch.float32) for x in inputs))
        return [out] if isinstance(out, Tensor) else list(out)
