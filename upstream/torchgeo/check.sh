#!/usr/bin/env bash
# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.
#
# Every patch here against the installed torchgeo 0.10.1, unpatched (must fail) and patched (must
# pass); see ../check.sh.
#
#   upstream/torchgeo/check.sh                     # every *.patch here
#   upstream/torchgeo/check.sh NAME.patch ...      # some
#   PYTHON=/path/to/python upstream/torchgeo/check.sh
exec "$(dirname "${BASH_SOURCE[0]}")/../check.sh" torchgeo 0.10.1 "$@"
