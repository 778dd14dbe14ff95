#!/usr/bin/env bash
# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.
#
# Show that each patch of upstream/PACKAGE fixes what it says, against the installed PACKAGE:
# for every patch, copy the installed package into a scratch folder twice, apply the patch to
# one copy (its regression test comes with it), run that test against the unpatched copy (it
# must FAIL) and against the patched copy (it must PASS). Offline. Each run is a fresh
# interpreter that imports nothing of torchgeo-gfm (whose workarounds would hide defects).
#
#   upstream/check.sh PACKAGE VERSION [PATCH ...]   # every upstream/PACKAGE/*.patch, or some
#   PYTHON=/path/to/python upstream/check.sh ...    # default: python3 on PATH
#
# upstream/<package>/check.sh calls this with its package and version. Needs the
# interpreter's PACKAGE with its dependencies and pytest; git (for `git apply`, outside any
# repository). Exit status 0 only if every patch behaves.
set -euo pipefail

package=$1 expected=$2
shift 2
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/$package" && pwd)
python=$(command -v "${PYTHON:-python3}")
python="$(cd "$(dirname "$python")" && pwd)/$(basename "$python")"  # a venv's: no realpath
site=$("$python" -c "import os, $package; print(os.path.dirname(os.path.dirname($package.__file__)))")
version=$("$python" -c "import $package; print($package.__version__)")
[[ $version == "$expected" ]] ||
    echo "warning: patches are against $package $expected, found $version" >&2

if (($#)); then patches=("$@"); else patches=("$here"/*.patch); fi
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
status=0

run_tests() {  # $1: folder whose package is imported; $2...: test files
    local tree=$1
    shift
    # from $scratch (holds no package), so only PYTHONPATH decides which copy is imported
    (cd "$scratch" && env -u PYTEST_ADDOPTS -u PYTEST_PLUGINS PYTHONPATH="$tree" \
        "$python" -m pytest -q -p no:cacheprovider -o addopts= \
        -o markers='slow: needs the internet' -m 'not slow' "$@" 2>&1)
}

for patch in "${patches[@]}"; do
    [[ -f $patch ]] || patch="$here/$patch"
    patch=$(cd "$(dirname "$patch")" && pwd)/$(basename "$patch")
    name=$(basename "$patch" .patch)
    before="$scratch/$name/before" after="$scratch/$name/after"
    mkdir -p "$before" "$after"
    cp -r "$site/$package" "$before/"
    cp -r "$site/$package" "$after/"
    # the installed package has no docs/: those hunks are for the upstream repository;
    # outside any repository even when TMPDIR is inside one: paths stay relative to $after
    (cd "$after" && GIT_CEILING_DIRECTORIES="$scratch/$name" \
        git apply --include="$package/*" --include='tests/*' "$patch")
    mapfile -t tests < <(cd "$after" && find tests -name 'test_*.py' | sed "s|^|$after/|")
    echo "=== $name: ${#tests[@]} test file(s)"
    rc=0
    out=$(run_tests "$before" "${tests[@]}") || rc=$?
    if ((rc == 0)); then
        echo "  unpatched $package: PASSED (expected a failure)"
        status=1
    elif ((rc > 2)); then  # pytest: 1 tests failed, 2 collection error (missing API)
        echo "  unpatched $package: could not run the test (exit $rc)"
        sed 's/^/    /' <<<"$out" | tail -30
        status=1
    else
        echo "  unpatched $package: failed, as expected: $(grep -E '^E ' <<<"$out" | head -1 | cut -c1-200)"
        echo "    $(tail -1 <<<"$out")"
    fi
    if out=$(run_tests "$after" "${tests[@]}"); then
        echo "  patched $package:   passed: $(tail -1 <<<"$out")"
    else
        echo "  patched $package:   FAILED"
        sed 's/^/    /' <<<"$out" | tail -30
        status=1
    fi
done
exit $status
