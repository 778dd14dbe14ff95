# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""upstream/<package>: every patch applies to the installed package; check.sh shows a fix.

check.sh runs offline, in fresh interpreters (this process has imported torchgeo_gfm, whose
workarounds in ``torchgeo_gfm._compat``, once applied, would hide the defects): it
copies the installed package into a scratch folder and runs each patch's regression test
there before and after applying the patch.
"""

import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UPSTREAM = Path(__file__).parents[2] / 'upstream'
#: package -> (version the patches are against, patches that must be there)
PACKAGES = {
    'torchgeo': (
        '0.10.1',
        {
            'classification-timm-head',
            'oscd-kornia',
            'change-detection-figures',
            'vaihingen-batches-tiles',
            'figure-batches',
            'gfm-weights',
        },
    ),
    'litdata': ('0.2.76', {'obstore-http-endpoint', 'optimize-sigint'}),
    'lightning': ('2.6.6', {'ckpt-path-checks'}),
}
PATCHES = [
    (package, patch)
    for package in PACKAGES
    for patch in sorted((UPSTREAM / package).glob('*.patch'))
]

pytestmark = pytest.mark.skipif(shutil.which('git') is None, reason='needs git apply')


@pytest.mark.parametrize('package', PACKAGES)
def test_patches_present(package: str) -> None:
    names = {p.stem for p in (UPSTREAM / package).glob('*.patch')}
    assert PACKAGES[package][1] <= names


@pytest.mark.parametrize(
    ('package', 'patch'), PATCHES, ids=[f'{p}-{f.stem}' for p, f in PATCHES]
)
def test_patch_applies_to_installed_package(
    package: str, patch: Path, tmp_path: Path
) -> None:
    module = importlib.import_module(package)
    assert module.__version__ == PACKAGES[package][0]
    shutil.copytree(Path(module.__file__ or '').parent, tmp_path / package)
    proc = subprocess.run(
        [
            'git',
            'apply',
            '--check',
            f'--include={package}/*',
            '--include=tests/*',
            patch,
        ],
        cwd=tmp_path,
        env=os.environ | {'GIT_CEILING_DIRECTORIES': str(tmp_path.parent)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    # every patch brings a regression test
    assert '+++ b/tests/' in patch.read_text()


@pytest.mark.slow
@pytest.mark.parametrize(
    ('package', 'patch', 'failure'),
    [
        (
            'torchgeo',
            'oscd-kornia',
            'Video and mask must have the same number of frames',
        ),
        # the multipart upload of optimize to an http:// S3 endpoint is refused
        ('litdata', 'obstore-http-endpoint', 'HTTP error: builder error'),
        # optimize leaves its os._exit(0) SIGINT handler installed
        ('litdata', 'optimize-sigint', 'assert _signal_handler =='),
        # LightningCLI's --ckpt_path with a pickle payload: torch's bare error
        ('lightning', 'ckpt-path-checks', 'UnpicklingError: Weights only load failed'),
    ],
)
def test_check_script(package: str, patch: str, failure: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    env |= {'PYTHON': sys.executable, 'TMPDIR': str(tmp_path)}
    proc = subprocess.run(
        [UPSTREAM / package / 'check.sh', f'{patch}.patch'],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f'=== {patch}' in proc.stdout
    assert f'unpatched {package}: failed, as expected' in proc.stdout
    assert failure in proc.stdout
    assert f'patched {package}:   passed' in proc.stdout
