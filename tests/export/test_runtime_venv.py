# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""An exported model runs in a Python environment with only the runtime's dependencies.

A fresh venv (no pip, offline) gets links to a few distributions of this one and the
package's source; Lightning, TorchGeo, timm and the rest of the training stack are not
importable there. ``python -m torchgeo_gfm.cli predict model.onnx`` (and ``.pt2``) must
run in it and write what the full environment writes.
"""

import importlib.metadata
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS
from rasterio.transform import from_origin

from tests.export.exported_files import TRAINING_STACK
from tests.scene.helpers import smooth_image, write_raster
from torchgeo_gfm.scene import predict_scene

#: the distributions ``predict`` needs for an exported file, found by trial (each of
#: these missing fails the run); PyTorch's CUDA libraries are found by its own paths
RUNTIME = {
    'common': (
        *('torch', 'typing_extensions', 'numpy', 'tqdm', 'PyYAML'),
        *('rasterio', 'affine', 'attrs', 'certifi', 'click', 'pyparsing'),
    ),
    '.onnx': ('onnxruntime', 'onnx', 'protobuf', 'ml_dtypes'),
    # torch.export.load's symbolic shapes and graph passes
    '.pt2': ('sympy', 'mpmath', 'filelock', 'networkx'),
}
#: what the runtime must not need: the training stack
ABSENT = TRAINING_STACK
ROOT = Path(__file__).resolve().parents[2]


def link_distributions(names: list[str], site: Path) -> None:
    """Link each distribution's top-level files of this environment into *site*."""
    missing = []
    for name in names:
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(name)
            continue
        tops = {PurePosixPath(str(f)).parts[0] for f in dist.files or []}
        for top in sorted(tops - {'..', '__pycache__'}):
            source = Path(str(dist.locate_file(top)))
            if source.exists() and not (site / top).exists():
                (site / top).symlink_to(source)
    if missing:
        pytest.fail(
            f'the runtime test needs {", ".join(missing)} installed here: pip install '
            "'torchgeo-gfm[export]'"
        )


@pytest.fixture(scope='module')
def python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Python of a venv with only the runtime's distributions and the source."""
    root = tmp_path_factory.mktemp('runtime') / 'venv'
    subprocess.run(
        [sys.executable, '-m', 'venv', '--without-pip', str(root)], check=True
    )
    site = next((root / 'lib').glob('python3*/site-packages'))
    names = [name for group in RUNTIME.values() for name in group]
    link_distributions(names, site)
    (site / 'torchgeo_gfm_source.pth').write_text(f'{ROOT}\n')
    return root / 'bin' / 'python'


def run(python: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the venv's Python alone: no PYTHONPATH, user site or this venv."""
    env = {'PATH': os.defpath, 'PYTHONNOUSERSITE': '1', 'HOME': str(cwd)}
    return subprocess.run(
        [str(python), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        check=False,  # the caller shows stderr
    )


@pytest.mark.slow
def test_training_stack_is_absent(python: Path, tmp_path: Path) -> None:
    code = (
        'import importlib\n'
        'found = []\n'
        f'for name in {ABSENT!r}:\n'
        '    try:\n'
        '        importlib.import_module(name)\n'
        '    except ImportError:\n'
        '        continue\n'
        '    found.append(name)\n'
        'print(found)\n'
        'import torchgeo_gfm.scene.predict, torchgeo_gfm.scene.embed\n'
        'import torchgeo_gfm.export.runtime, torchgeo_gfm.precision\n'
    )
    done = run(python, '-c', code, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == '[]'


@pytest.mark.slow
@pytest.mark.parametrize('suffix', ['.onnx', '.pt2'])
def test_predict_runs_without_the_training_stack(
    python: Path, exported: Callable[[str, str], Path], tmp_path: Path, suffix: str
) -> None:
    model = exported('fcn', suffix)
    image = smooth_image(3, 150, 130).clip(1, 255)
    image[:, :40, :60] = 0
    scene = write_raster(
        tmp_path / 'scene.tif',
        image,
        CRS.from_epsg(32633),
        from_origin(390_000.0, 5_820_000.0, 10.0, 10.0),
        nodata=0,
    )
    out = tmp_path / 'out.tif'
    command = ['predict', str(model), str(scene), '-o', str(out), '--device', 'cpu']
    done = run(python, '-m', 'torchgeo_gfm.cli', *command, cwd=tmp_path)
    assert done.returncode == 0, (
        f'predict {suffix} failed with only {RUNTIME} installed (a missing module: add '
        f'its distribution to RUNTIME):\n{done.stderr[-3000:]}'
    )
    expected = tmp_path / 'expected.tif'
    predict_scene(model, [scene], expected, progress=False)
    with rasterio.open(out) as got, rasterio.open(expected) as want:
        assert got.profile == want.profile
        assert got.tags() == want.tags()
        np.testing.assert_array_equal(got.read(), want.read())
        assert (got.read() == 255).any()  # the nodata corner
