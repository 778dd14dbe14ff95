# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

import hashlib
import shutil
import zipfile
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
import torch
from torchgeo.datasets import DatasetNotFoundError

from torchgeo_gfm.datasets import ManualDownloadError, WHUBuilding

DATA = Path(__file__).parents[1] / 'data' / 'whu_building'
ZIP = DATA / WHUBuilding.filename
MD5 = hashlib.md5(ZIP.read_bytes()).hexdigest()


@pytest.fixture
def served(
    monkeypatch: pytest.MonkeyPatch, serve_directory: object, tmp_path: Path
) -> Path:
    """Point WHUBuilding's URL at a local server holding the fake zip."""
    base = serve_directory(DATA)  # type: ignore[operator]
    monkeypatch.setattr(WHUBuilding, 'url', base + WHUBuilding.url.rsplit('/', 1)[1])
    return tmp_path


class TestWHUBuilding:
    @pytest.mark.parametrize(
        ('split', 'length'), [('train', 4), ('val', 2), ('test', 2)]
    )
    def test_getitem(self, split: str, length: int) -> None:
        ds = WHUBuilding(DATA, split=split, transforms=lambda s: {**s, 'seen': True})
        assert len(ds) == length
        sample = ds[0]
        assert sample['image'].shape == (3, 32, 32)
        assert sample['image'].dtype == torch.float32
        assert sample['mask'].shape == (32, 32)
        assert sample['mask'].dtype == torch.long
        assert set(sample['mask'].unique().tolist()) == {0, 1}
        assert sample['seen']

    def test_flat_layout(self, tmp_path: Path) -> None:
        shutil.copytree(DATA / WHUBuilding.directory / 'val', tmp_path / 'val')
        assert len(WHUBuilding(tmp_path, split='val')) == 2

    def test_download(self, served: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(WHUBuilding, 'md5', MD5)
        ds = WHUBuilding(served, split='test', download=True, checksum=True)
        assert len(ds) == 2
        assert (served / WHUBuilding.filename).is_file()
        # already there: no second download
        WHUBuilding(served, split='train', download=True)

    def test_extract_archive(self, tmp_path: Path) -> None:
        shutil.copy(ZIP, tmp_path)
        assert len(WHUBuilding(tmp_path, split='val')) == 2

    def test_archive_corrupted(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        shutil.copy(ZIP, tmp_path)
        monkeypatch.setattr(WHUBuilding, 'md5', '0' * 32)
        with pytest.raises(RuntimeError, match='corrupted'):
            WHUBuilding(tmp_path, checksum=True)

    def test_archive_without_split(self, tmp_path: Path) -> None:
        with zipfile.ZipFile(tmp_path / WHUBuilding.filename, 'w') as archive:
            archive.writestr('README.txt', 'no tiles')
        with pytest.raises(ManualDownloadError, match='expected <root>'):
            WHUBuilding(tmp_path, split='val')

    def test_download_corrupted(
        self, served: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(WHUBuilding, 'md5', '0' * 32)
        with pytest.raises(RuntimeError, match='corrupted'):
            WHUBuilding(served, download=True, checksum=True)

    def test_checksum_without_md5(self) -> None:
        with pytest.raises(ValueError, match='publishes no'):
            WHUBuilding(DATA, checksum=True)

    def test_not_found(self, tmp_path: Path) -> None:
        with pytest.raises(DatasetNotFoundError, match='download=True'):
            WHUBuilding(tmp_path)

    def test_missing_label(self, tmp_path: Path) -> None:
        shutil.copytree(DATA / WHUBuilding.directory / 'val', tmp_path / 'val')
        next((tmp_path / 'val' / 'label').iterdir()).unlink()
        with pytest.raises(ManualDownloadError, match='labels missing'):
            WHUBuilding(tmp_path, split='val')

    def test_invalid_split(self) -> None:
        with pytest.raises(ValueError, match='split must be one of'):
            WHUBuilding(DATA, split='foo')  # type: ignore[arg-type]

    def test_plot(self) -> None:
        ds = WHUBuilding(DATA, split='val')
        sample = ds[0]
        assert len(ds.plot(sample, suptitle='test').axes) == 2
        plt.close()
        sample['prediction'] = sample['mask'].clone()
        assert len(ds.plot(sample, show_titles=False).axes) == 3
        plt.close()
