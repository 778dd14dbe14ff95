#!/usr/bin/env bash
# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.
#
# Show that each patch here fixes what it says, against the installed TorchGeo 0.10.1:
# for every patch, copy the installed torchgeo package into a scratch folder twice, apply
# the patch to one copy (its regression test comes with it), run that test against the
# unpatched copy (it must FAIL) and against the patched copy (it must PASS). Offline.
#
#   upstream/torchgeo/check.sh                         # every *.patch here
#   upstream/torchgeo/check.sh oscd-kornia.patch ...   # some
#   PYTHON=/path/to/python upstream/torchgeo/check.sh  # default: python3 on PATH
#
# Needs the interpreter's torchgeo 0.10.1 with its dependencies and pytest; git (for
# `git apply`, outside any repository). Exit status 0 only if every patch behaves.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
python=$(command -v "${PYTHON:-python3}")
python="$(cd "$(dirname "$python")" && pwd)/$(basename "$python")"  # a venv's: no realpath
site=$("$python" -c 'import os, torchgeo; print(os.path.dirname(os.path.dirname(torchgeo.__file__)))')
version=$("$python" -c 'import torchgeo; print(torchgeo.__version__)')
[[ $version == 0.10.1 ]] || echo "warning: patches are against torchgeo 0.10.1, found $version" >&2

if (($#)); then patches=("$@"); else patches=("$here"/*.patch); fi
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
status=0

run_tests() {  # $1: folder whose torchgeo is imported; $2...: test files
    local tree=$1
    shift
    # from $scratch (holds no torchgeo), so only PYTHONPATH decides which copy is imported
    (cd "$scratch" && PYTHONPATH="$tree" "$python" -m pytest -q -p no:cacheprovider \
        -o addopts= -o markers='slow: needs the internet' -m 'not slow' "$@" 2>&1)
}

for patch in "${patches[@]}"; do
    [[ -f $patch ]] || patch="$here/$patch"
    name=$(basename "$patch" .patch)
    before="$scratch/$name/before" after="$scratch/$name/after"
    mkdir -p "$before" "$after"
    cp -r "$site/torchgeo" "$before/"
    cp -r "$site/torchgeo" "$after/"
    # the installed package has no docs/: those hunks are for the TorchGeo repository
    patch=$(cd "$(dirname "$patch")" && pwd)/$(basename "$patch")
    (cd "$after" && git apply --include='torchgeo/*' --include='tests/*' "$patch")
    mapfile -t tests < <(cd "$after" && find tests -name 'test_*.py' | sed "s|^|$after/|")
    echo "=== $name: ${#tests[@]} test file(s)"
    rc=0
    out=$(run_tests "$before" "${tests[@]}") || rc=$?
    if ((rc == 0)); then
        echo "  unpatched torchgeo: PASSED (expected a failure)"
        status=1
    elif ((rc > 2)); then  # pytest: 1 tests failed, 2 collection error (missing API)
        echo "  unpatched torchgeo: could not run the test (exit $rc)"
        sed 's/^/    /' <<<"$out" | tail -30
        status=1
    else
        echo "  unpatched torchgeo: failed, as expected: $(grep -E '^E ' <<<"$out" | head -1 | cut -c1-150)"
        echo "    $(tail -1 <<<"$out")"
    fi
    if out=$(run_tests "$after" "${tests[@]}"); then
        echo "  patched torchgeo:   passed: $(tail -1 <<<"$out")"
    else
        echo "  patched torchgeo:   FAILED"
        sed 's/^/    /' <<<"$out" | tail -30
        status=1
    fi
done
exit $status
