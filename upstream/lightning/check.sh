#!/usr/bin/env bash
# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.
#
# Every patch here against the installed lightning 2.6.6, unpatched (must fail) and patched (must
# pass); see ../check.sh.
#
#   upstream/lightning/check.sh                     # every *.patch here
#   upstream/lightning/check.sh NAME.patch ...      # some
#   PYTHON=/path/to/python upstream/lightning/check.sh
exec "$(dirname "${BASH_SOURCE[0]}")/../check.sh" lightning 2.6.6 "$@"
