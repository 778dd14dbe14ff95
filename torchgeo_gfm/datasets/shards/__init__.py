# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""GeoPile as litdata shards: written once, streamed from a folder or object storage.

:func:`write_geopile_shards` (``torchgeo-gfm shard ROOT OUT``) turns any GeoPile that
:class:`~torchgeo_gfm.datasets.GeoPile` reads (``ROOT/<source>/<class>/<image>``, NAIP
chips included, or cut straight from the GeoTIFFs) into
`litdata <https://github.com/Lightning-AI/litData>`_ chunks; each sample holds the image
file's bytes as they are (a JPEG is not re-encoded), its source index and name, its class
folder and its path relative to ROOT. :func:`write_multiband_shards`
(``torchgeo-gfm shard --sensor s2 SOURCE... OUT``) stores folders of multiband GeoTIFFs
as their raw arrays instead, losslessly, with the sensor recorded in the index.
:class:`GeoPileStreamingDataset` streams either back: images decoded as GeoPile does,
arrays as stored.

One module per concept, each read top to bottom:

* :mod:`.writing`: :func:`write_geopile_shards` and its inputs, checks and report;
* :mod:`.multiband`: :func:`write_multiband_shards`, multiband GeoTIFFs as arrays;
* :mod:`.reading`: :func:`decode_rgb`, :func:`shards_sensor`, :func:`fill_nodata` and
  :class:`GeoPileStreamingDataset`;
* :mod:`.storage`: local folders and object-storage URLs, checked before any work;
* :mod:`.processes`: the writer's worker processes stop when the command stops.

.. versionadded:: 0.1
"""

from .multiband import write_multiband_shards
from .reading import (
    GeoPileStreamingDataset,
    ShardError,
    decode_rgb,
    fill_nodata,
    shards_sensor,
)
from .storage import REMOTE_SCHEMES, WRITABLE_SCHEMES, is_remote
from .writing import (
    MAX_WORKERS,
    ShardReport,
    ShardWriteError,
    parse_chunk_bytes,
    write_geopile_shards,
)

__all__ = (
    'MAX_WORKERS',
    'REMOTE_SCHEMES',
    'WRITABLE_SCHEMES',
    'GeoPileStreamingDataset',
    'ShardError',
    'ShardReport',
    'ShardWriteError',
    'decode_rgb',
    'fill_nodata',
    'is_remote',
    'parse_chunk_bytes',
    'shards_sensor',
    'write_geopile_shards',
    'write_multiband_shards',
)
