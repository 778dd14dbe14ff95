# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Renamed modules and classes keep their old names for one release, with a warning."""

import importlib

import pytest

from torchgeo_gfm._deprecated import REMOVED_IN

#: old module, new module, an attribute both have (old name, new name)
MOVED = [
    ('torchgeo_gfm.models.gfm', 'torchgeo_gfm.models.gfm_swin', 'gfm_swin_b', None),
    (
        'torchgeo_gfm.tasks.gfm',
        'torchgeo_gfm.tasks.continual_pretraining',
        'GFM',
        'ContinualPretraining',
    ),
    (
        'torchgeo_gfm.datasets.scene',
        'torchgeo_gfm.datasets.classification',
        'SceneClassificationDataset',
        None,
    ),
]


@pytest.mark.parametrize(('old', 'new', 'name', 'renamed'), MOVED)
def test_moved_module_warns_and_forwards(
    old: str, new: str, name: str, renamed: str | None
) -> None:
    module = importlib.import_module(old)
    with pytest.deprecated_call(match=rf'{old}\.{name}.*{new}.*{REMOVED_IN}'):
        value = getattr(module, name)
    assert value is getattr(importlib.import_module(new), renamed or name)


def test_renamed_task_class() -> None:
    from torchgeo_gfm import tasks

    with pytest.deprecated_call(match='ContinualPretraining'):
        assert tasks.GFM is tasks.ContinualPretraining


def test_unknown_names_stay_attribute_errors() -> None:
    import torchgeo_gfm.models.gfm as old
    from torchgeo_gfm import tasks

    with pytest.raises(AttributeError, match='no_such_name'):
        _ = tasks.no_such_name  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        _ = old.no_such_name
    # the import system probes modules for __path__ & co: no warning, no forwarding
    with pytest.raises(AttributeError, match='__path__'):
        _ = old.__path__


def test_package_imports_nothing_heavy() -> None:
    import subprocess
    import sys

    code = (
        'import sys, torchgeo_gfm; '
        "heavy = [m for m in ('torch', 'timm', 'numpy') if m in sys.modules]; "
        'assert not heavy, heavy; '
        'import torchgeo_gfm.models, timm; '
        "timm.create_model('gfm_swin_base', pretrained=False, weight_init='skip', "
        'depths=(1, 1, 1, 1), embed_dim=32, num_heads=(1, 1, 1, 1))'
    )
    subprocess.run([sys.executable, '-c', code], check=True)
