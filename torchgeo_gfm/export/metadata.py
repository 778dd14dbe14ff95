# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""What an exported file says about itself: the one schema its writer and its readers share.

Standard library only (and :class:`~torchgeo_gfm.scene.SceneError`), so that a deployment reads it without PyTorch or Lightning. The
metadata is one JSON object, stored as the ONNX ``metadata_props`` entry
:data:`METADATA_KEY` or the ``.pt2`` extra file :data:`EXTRA_FILE`::

    {
        "format": "torchgeo_gfm.exported", "version": 1,
        "kind": "segmentation",      # or change, classification, super_resolution, backbone
        "mode": "multiclass",        # binary, multilabel; regression (SR); embedding (backbone)
        "inputs": ["image"],         # ["image1", "image2"] for change detection
        "outputs": ["probabilities"],
        "meaning": "per-pixel class probabilities (softmax over 'classes')",
        "in_channels": 3, "bands": ["red", "green", "blue"], "sensor": {...} or null,
        "mean": [...], "std": [...], # per band, on the raster's scale: applied in the graph
        "tile": 512, "batch": null,  # null: any batch size; else the one it takes
        "multiple": 32,              # tile sizes the model takes: multiples of this
        "channels": 2,               # of the first output (classes, labels, bands, features)
        "scale": 1,                  # output pixels per input pixel (SR; 1/stride: backbone)
        "stride": 1,                 # input pixels per output pixel (a backbone stage's stride)
        "classes": ["background", "building"] or null,
        "stage": null,               # the Swin stage of a backbone's "features"
        "source": "finetuned.ckpt", "source_sha256": "...", "torchgeo_gfm": "0.2.0"
    }

Normalisation is in the graph: inputs are the raster's values as stored (float32), so a
service, a GIS plugin or a batch job cannot normalise differently from training. ``mean``
and ``std`` are recorded too: ``mean`` is what the scene engine writes where the raster has
no data (the model then sees zeros there, as in training), and both say what the graph does.

.. versionadded:: 0.2
"""

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ..scene.errors import SceneError

#: the ONNX ``metadata_props`` key holding the JSON
METADATA_KEY = 'torchgeo_gfm'
#: the ``.pt2`` extra file holding the JSON
EXTRA_FILE = 'torchgeo_gfm.json'
FORMAT = 'torchgeo_gfm.exported'
VERSION = 1
KINDS = ('segmentation', 'change', 'classification', 'super_resolution', 'backbone')
MODES = ('binary', 'multiclass', 'multilabel', 'regression', 'embedding')


class ExportError(SceneError):
    """Bad input to an export, or an exported file this package cannot run.

    The message names the file or option and says what to do; nothing is written.

    .. versionadded:: 0.2
    """


@dataclass
class ExportMetadata:
    """What an exported model takes and gives (see the module's docstring).

    .. versionadded:: 0.2
    """

    kind: str
    mode: str
    inputs: list[str]
    outputs: list[str]
    meaning: str
    in_channels: int
    mean: list[float]
    std: list[float]
    tile: int
    multiple: int
    channels: int
    batch: int | None = None
    scale: int = 1
    stride: int = 1
    bands: list[str | int] | None = None
    sensor: dict[str, Any] | None = None
    classes: list[str] | None = None
    stage: int | None = None
    source: str = ''
    source_sha256: str = ''
    torchgeo_gfm: str = ''
    format: str = FORMAT
    version: int = VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def images(self) -> int:
        """Rasters the model takes (2 for change detection)."""
        return len(self.inputs)

    def to_json(self) -> str:
        """The JSON stored in the file."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes | None, where: str) -> 'ExportMetadata':
        """Parse and check the JSON an exported file holds.

        Args:
            text: the stored JSON; None where the file holds none.
            where: the file, for messages.

        Returns:
            The metadata.

        Raises:
            ExportError: if there is none (a file not exported by this package), it is
                not valid JSON, from a newer version, or a field is missing or wrong.
        """
        if text is None:
            raise ExportError(
                f'{where}: no {METADATA_KEY!r} metadata, so not a model exported by '
                'torchgeo-gfm (it cannot know its bands, normalisation or classes); '
                'export the checkpoint with: torchgeo-gfm export CHECKPOINT -o '
                'model.onnx'
            )
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError) as error:
            raise ExportError(
                f'{where}: its {METADATA_KEY!r} metadata is not valid JSON ({error}); '
                'the file is damaged: export it again'
            ) from None
        if not isinstance(data, dict) or data.get('format') != FORMAT:
            raise ExportError(
                f'{where}: its {METADATA_KEY!r} metadata is not a torchgeo-gfm export '
                f'description (format {FORMAT!r}); export the checkpoint again'
            )
        version = data.get('version')
        if not isinstance(version, int) or version > VERSION:
            raise ExportError(
                f'{where}: exported with metadata version {version!r}, this torchgeo-gfm '
                f'reads version {VERSION} and older: upgrade torchgeo-gfm'
            )
        known = {f.name for f in fields(cls)}
        missing = sorted(f.name for f in fields(cls) if f.name not in data)
        required = {'kind', 'mode', 'inputs', 'outputs', 'in_channels', 'mean', 'std'}
        if required & set(missing):
            raise ExportError(
                f'{where}: its metadata lacks {sorted(required & set(missing))}; the '
                'file is damaged: export it again'
            )
        meta = cls(**{k: v for k, v in data.items() if k in known})
        meta.extra.update({k: v for k, v in data.items() if k not in known})
        meta.check(where)
        return meta

    def check(self, where: str) -> None:
        """Refuse values the scene engine could not use.

        Args:
            where: the file, for messages.

        Raises:
            ExportError: naming the field and its value.
        """

        def bad(name: str, expected: str) -> ExportError:
            value = getattr(self, name)
            return ExportError(
                f'{where}: metadata {name} = {value!r}, expected {expected}; the file '
                'is damaged or from another tool: export it again'
            )

        if self.kind not in KINDS:
            raise bad('kind', f'one of {", ".join(KINDS)}')
        if self.mode not in MODES:
            raise bad('mode', f'one of {", ".join(MODES)}')
        for name in ('in_channels', 'tile', 'multiple', 'channels', 'scale', 'stride'):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise bad(name, 'a positive integer')
        if self.batch is not None and (
            not isinstance(self.batch, int) or self.batch < 1
        ):
            raise bad('batch', 'null (any batch size) or a positive integer')
        if self.images != (2 if self.kind == 'change' else 1):
            raise bad('inputs', 'two inputs for change detection, else one')
        for name in ('mean', 'std'):
            values = getattr(self, name)
            if (
                not isinstance(values, list)
                or len(values) != self.in_channels
                or not all(isinstance(v, int | float) for v in values)
            ):
                raise bad(name, f'{self.in_channels} numbers (one per band)')
        names = self.channels + (self.mode == 'binary')  # binary: background too
        if self.classes is not None and len(self.classes) not in (self.channels, names):
            raise bad('classes', f'{self.channels} names (one per output channel)')
