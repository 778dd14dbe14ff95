# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""upstream/torchgeo: every patch applies to the installed TorchGeo; check.sh shows a fix.

check.sh runs offline: it copies the installed torchgeo into a scratch folder, runs each
patch's regression test there before and after applying the patch.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torchgeo

UPSTREAM = Path(__file__).parents[2] / 'upstream' / 'torchgeo'
PATCHES = sorted(UPSTREAM.glob('*.patch'))

pytestmark = pytest.mark.skipif(shutil.which('git') is None, reason='needs git apply')


def test_patches_present() -> None:
    names = {p.stem for p in PATCHES}
    assert {
        'classification-timm-head',
        'oscd-kornia',
        'change-detection-figures',
        'vaihingen-batches-tiles',
        'figure-batches',
        'gfm-weights',
    } <= names


@pytest.mark.parametrize('patch', PATCHES, ids=lambda p: p.stem)
def test_patch_applies_to_installed_torchgeo(patch: Path, tmp_path: Path) -> None:
    assert torchgeo.__version__ == '0.10.1'
    shutil.copytree(Path(torchgeo.__file__).parent, tmp_path / 'torchgeo')
    proc = subprocess.run(
        ['git', 'apply', '--check', '--include=torchgeo/*', '--include=tests/*', patch],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    # every patch brings a regression test
    assert '+++ b/tests/' in patch.read_text()


@pytest.mark.slow
def test_check_script(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    env |= {'PYTHON': sys.executable, 'TMPDIR': str(tmp_path)}
    proc = subprocess.run(
        [UPSTREAM / 'check.sh', 'oscd-kornia.patch'],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert '=== oscd-kornia' in proc.stdout
    assert 'unpatched torchgeo: failed, as expected' in proc.stdout
    assert 'Video and mask must have the same number of frames' in proc.stdout
    assert 'patched torchgeo:   passed' in proc.stdout
