#!/usr/bin/env bash
# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.
#
# Every patch here against the installed litdata 0.2.76, unpatched (must fail) and patched (must
# pass); see ../check.sh.
#
#   upstream/litdata/check.sh                     # every *.patch here
#   upstream/litdata/check.sh NAME.patch ...      # some
#   PYTHON=/path/to/python upstream/litdata/check.sh
exec "$(dirname "${BASH_SOURCE[0]}")/../check.sh" litdata 0.2.76 "$@"
