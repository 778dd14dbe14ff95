# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""The wheel alone is enough: build it, install it away from the repository, train from it.

The fresh virtualenv gets the wheel (``--no-deps``) and, through a ``.pth`` line, the
dependencies already installed in the interpreter running the tests (no download). A
``.pth`` path line is not processed as a site directory, so the repository's editable
install there stays inactive: ``torchgeo_gfm`` can only come from the wheel.
"""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).parents[2]
TINY_STUDENT = {'embed_dim': 8, 'depths': [1, 1, 1, 1], 'num_heads': [1, 1, 1, 1]}
TINY = [
    f'--model.init_args.model_kwargs={json.dumps(TINY_STUDENT)}',
    f'--model.init_args.teacher_kwargs={json.dumps(TINY_STUDENT)}',
    '--model.init_args.teacher_size=64',
    '--data.init_args.batch_size=2',
    '--data.init_args.num_workers=0',
    '--data.init_args.size=64',
    '--data.init_args.load_size=64',
]


def _run(cmd: list[str], cwd: Path, timeout: float = 300) -> str:
    env = {
        k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'VIRTUAL_ENV')
    }
    proc = subprocess.run(
        cmd,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, f'{cmd}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}'
    return proc.stdout


@pytest.fixture(scope='module')
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # build from a copy (as a clone would be), leaving no build/ in the working tree
    src = tmp_path_factory.mktemp('src') / 'torchgeo-gfm'
    shutil.copytree(
        REPO,
        src,
        symlinks=True,
        ignore=shutil.ignore_patterns(
            '.venv',
            '.git',
            'build',
            'dist',
            'output',
            '*.egg-info',
            '__pycache__',
            '.*_cache',
        ),
    )
    out = tmp_path_factory.mktemp('dist')
    _run(
        [sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation',
         '-q', '-w', str(out), str(src)],
        cwd=out,
    )  # fmt: skip
    (path,) = out.glob('torchgeo_gfm-*.whl')
    return path


def test_wheel_contents(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    configs = sorted(
        f'torchgeo_gfm/configs/{p.relative_to(REPO / "configs").as_posix()}'
        for p in (REPO / 'configs').rglob('*.yaml')
    )
    sensors = [  # the shipped sensors (torchgeo_gfm.sensors)
        f'torchgeo_gfm/sensors/{p.name}'
        for p in (REPO / 'torchgeo_gfm' / 'sensors').glob('*.yaml')
    ]
    assert sorted(n for n in names if n.endswith('.yaml')) == sorted(configs + sensors)
    assert any(n.endswith('.dist-info/licenses/LICENSE') for n in names)
    (meta,) = [n for n in names if n.endswith('.dist-info/METADATA')]
    text = zipfile.ZipFile(wheel).read(meta).decode()
    assert 'License-Expression: MIT' in text
    assert 'Project-URL: Paper, https://arxiv.org/abs/2302.04476' in text


@pytest.mark.slow
def test_pip_only_path(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / 'venv'
    venv.create(env_dir, with_pip=False, symlinks=True)
    python = env_dir / 'bin' / 'python'
    purelib = Path(
        _run([str(python), '-c', 'import sysconfig; print(sysconfig.get_path("purelib"))'], tmp_path).strip()
    )  # fmt: skip
    (purelib / '_deps.pth').write_text(sysconfig.get_path('purelib') + '\n')
    _run(
        [sys.executable, '-m', 'pip', '--python', str(python), 'install', '--no-deps',
         '--no-index', '-q', str(wheel)],
        cwd=tmp_path,
    )  # fmt: skip
    work = tmp_path / 'work'
    work.mkdir()
    # one interpreter start (importing torch costs seconds): where the package comes
    # from, the config list, the synthetic GeoPile sample
    script = (
        'import sys, torchgeo_gfm\n'
        'from torchgeo_gfm.cli.config import config_names\n'
        'from torchgeo_gfm.datasets import write_synthetic_geopile as w\n'
        'print(torchgeo_gfm.__file__)\n'
        'print(" ".join(config_names()))\n'
        "print(w(sys.argv[1], images_per_class=1, sources=('naip', 'resisc45'), sizes=(64, 96)))\n"
    )
    where, names, root = _run([str(python), '-c', script, 'geopile'], work).split('\n')[
        :3
    ]
    assert Path(where).is_relative_to(purelib)
    assert {'gfm', 'gfm_demo', 'finetune/dsifn'} <= set(names.split())

    cli = str(env_dir / 'bin' / 'torchgeo-gfm')  # the console script the wheel installs
    _run([cli, 'config', 'gfm_demo', '-o', 'x.yaml'], work)
    _run(
        [str(python), '-m', 'torchgeo', 'fit', '--config', 'x.yaml', *TINY,
         f'--data.init_args.root={root}', '--trainer.max_steps=2',
         '--trainer.limit_val_batches=0', '--trainer.enable_progress_bar=false'],
        work,
    )  # fmt: skip
    assert (work / 'output' / 'demo' / 'checkpoints' / 'last.ckpt').is_file()
