# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""``python -m torchgeo_gfm.cli``: the same as the ``torchgeo-gfm`` command."""

from . import main

raise SystemExit(main())
