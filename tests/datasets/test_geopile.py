# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

import os
import shutil
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset
from torchgeo.datasets import DatasetNotFoundError
from torchvision.datasets import ImageFolder

from torchgeo_gfm.datasets import GeoPile, GeoPileLayoutError

ROOT = Path('tests', 'data', 'geopile')
SOURCES = ('mlrsnet', 'naip', 'patternnet', 'resisc45', 'rsd46whu')


@pytest.fixture
def corrupt_root(tmp_path: Path) -> Path:
    """A copy of the fake GeoPile with one truncated JPEG and one non-image file."""
    root = tmp_path / 'geopile'
    shutil.copytree(ROOT, root, ignore=shutil.ignore_patterns('*.py'))
    jpg = root / 'naip' / 'urban' / 'naip_urban_0000.jpg'
    jpg.write_bytes(jpg.read_bytes()[:200])
    (root / 'naip' / 'urban' / 'naip_urban_0001.jpg').write_bytes(b'not an image')
    return root


class TestGeoPile:
    def test_getitem(self) -> None:
        ds = GeoPile(ROOT)
        assert ds.sources == SOURCES
        assert len(ds) == 30
        assert ds.counts == dict.fromkeys(SOURCES, 6)
        for i in range(len(ds)):  # every format, mode and bit depth of the fake data
            sample = ds[i]
            image = sample['image']
            assert image.dtype == torch.uint8
            assert image.ndim == 3
            assert image.shape[0] == 3
            assert sample['source'].dtype == torch.int64
        assert 'naip: 6' in str(ds)

    def test_sources_select_and_order(self) -> None:
        ds = GeoPile(ROOT, sources=['resisc45', 'naip'])
        assert ds.sources == ('resisc45', 'naip')
        assert ds.counts == {'resisc45': 6, 'naip': 6}
        assert int(ds[0]['source']) == 0
        assert int(ds[len(ds) - 1]['source']) == 1

    def test_size(self) -> None:
        ds = GeoPile(ROOT, size=40)
        assert {tuple(ds[i]['image'].shape) for i in range(len(ds))} == {(3, 40, 40)}

    def test_transforms(self) -> None:
        def double(sample: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            return {**sample, 'image': sample['image'].float() * 2}

        ds = GeoPile(ROOT, transforms=double)
        assert ds[0]['image'].dtype == torch.float32

    def test_split(self) -> None:
        train = GeoPile(ROOT, split='train', val_fraction=0.3)
        val = GeoPile(ROOT, split='val', val_fraction=0.3)
        assert len(train) + len(val) == 30
        assert 0 < len(val) < 30
        assert not set(train.files) & set(val.files)
        again = GeoPile(ROOT, split='val', val_fraction=0.3)
        assert again.files == val.files
        other = GeoPile(ROOT, split='val', val_fraction=0.3, seed=1)
        assert other.files != val.files

    @pytest.mark.parametrize(
        ('kwargs', 'match'),
        [
            ({'split': 'test'}, 'split must be one of'),
            ({'val_fraction': 1.0}, 'val_fraction'),
            ({'size': 0}, 'size must be'),
        ],
    )
    def test_bad_arguments(self, kwargs: dict[str, object], match: str) -> None:
        with pytest.raises(ValueError, match=match):
            GeoPile(ROOT, **kwargs)  # type: ignore[arg-type]

    def test_missing_root(self, tmp_path: Path) -> None:
        with pytest.raises(
            DatasetNotFoundError, match=r'is not a folder.*<root>/<source>'
        ):
            GeoPile(tmp_path / 'nowhere')

    def test_empty_root(self, tmp_path: Path) -> None:
        with pytest.raises(GeoPileLayoutError, match='no source sub-folders; expected'):
            GeoPile(tmp_path)

    def test_images_in_root(self, tmp_path: Path) -> None:
        shutil.copy(ROOT / 'naip' / 'urban' / 'naip_urban_0000.jpg', tmp_path)
        with pytest.raises(GeoPileLayoutError, match='1 images lie directly in it'):
            GeoPile(tmp_path)

    def test_source_without_images(self, tmp_path: Path) -> None:
        (tmp_path / 'naip' / 'chips').mkdir(parents=True)
        with pytest.raises(GeoPileLayoutError, match='no images found'):
            GeoPile(tmp_path)

    def test_empty_source_warns(self, tmp_path: Path) -> None:
        shutil.copytree(ROOT / 'naip', tmp_path / 'naip')
        (tmp_path / 'lightning_logs').mkdir()
        with pytest.warns(UserWarning, match=r"\['lightning_logs'\] .* hold no images"):
            ds = GeoPile(tmp_path)
        assert ds.counts == {'lightning_logs': 0, 'naip': 6}

    def test_missing_source(self) -> None:
        with pytest.raises(GeoPileLayoutError, match=r"\['millionaid'\] not found"):
            GeoPile(ROOT, sources=['naip', 'millionaid'])

    def test_index_error(self) -> None:
        with pytest.raises(IndexError, match='out of range'):
            GeoPile(ROOT)[30]

    def test_corrupt_files_replaced(self, corrupt_root: Path) -> None:
        ds = GeoPile(corrupt_root, sources=['naip'])
        bad = 3  # naip/urban/naip_urban_0000.jpg, sorted after the 3 fields images
        with pytest.warns(UserWarning, match=r'skipping bad image .*naip_urban_0000'):
            sample = ds[bad]
        assert sample['image'].dtype == torch.uint8
        assert 'naip_urban_0000.jpg' in {Path(p).name for p in ds.skipped_files}
        with warnings.catch_warnings():
            warnings.simplefilter('error')  # no second warning for a known bad file
            assert torch.equal(ds[bad]['image'], sample['image'])  # same replacement
        with pytest.warns(UserWarning, match='skipping bad image') as record:
            [ds[i] for i in range(len(ds))]
        assert ds.num_skipped == 2
        assert sorted(Path(p).name for p in ds.skipped_files) == [
            'naip_urban_0000.jpg',
            'naip_urban_0001.jpg',
        ]
        assert len(record) == 1  # the second bad file, named once

    def test_corrupt_files_shared_across_workers(self, corrupt_root: Path) -> None:
        ds = GeoPile(corrupt_root, sources=['naip'], size=16)
        loader = DataLoader(ds, batch_size=6, num_workers=1)
        batch = next(iter(loader))  # the worker warns on its own stderr
        assert batch['image'].shape == (6, 3, 16, 16)
        assert ds.num_skipped == 2  # counted in the worker, seen in the main process

    def test_all_unreadable(self, tmp_path: Path) -> None:
        folder = tmp_path / 'naip' / 'chips'
        folder.mkdir(parents=True)
        for i in range(3):
            (folder / f'{i}.png').write_bytes(b'')
        ds = GeoPile(tmp_path)
        with (
            pytest.warns(UserWarning, match='unreadable'),
            pytest.raises(
                RuntimeError, match='all 3 images are unreadable or degenerate'
            ),
        ):
            ds[0]

    def test_from_datasets(self) -> None:
        ds = GeoPile.from_datasets(
            {
                'folder': ROOT / 'naip',
                'imagefolder': ImageFolder(str(ROOT / 'resisc45')),
                'geopile': GeoPile(ROOT, sources=['patternnet']),
                'several': [
                    ImageFolder(str(ROOT / 'mlrsnet')),
                    ImageFolder(str(ROOT / 'rsd46whu')),
                ],
            },
            size=32,
        )
        assert ds.counts == {'folder': 6, 'imagefolder': 6, 'geopile': 6, 'several': 12}
        assert ds[len(ds) - 1]['image'].shape == (3, 32, 32)
        assert ds.root is None

    def test_from_datasets_without_files(self) -> None:
        with pytest.raises(TypeError, match="source 'x' is a TensorDataset"):
            GeoPile.from_datasets({'x': TensorDataset(torch.zeros(2))})

    def test_from_datasets_empty(self, tmp_path: Path) -> None:
        with pytest.raises(GeoPileLayoutError, match='no images found'):
            GeoPile.from_datasets({'naip': tmp_path})

    def test_plot(self) -> None:
        ds = GeoPile(ROOT)
        fig = ds.plot(ds[0], suptitle='test')
        assert fig.axes[0].get_title() == 'mlrsnet'
        plt.close(fig)
        sample = {'image': ds[0]['image'].float() / 255}
        fig = ds.plot(sample, show_titles=False)
        plt.close(fig)


def _fake_torchgeo_sources(root: Path) -> None:
    """RESISC45/PatternNet in TorchGeo's layouts, ours from tests/data, NAIP chips."""
    data = Path('tests', 'data')
    images = sorted(ROOT.rglob('*.jpg'))[:6]
    for i, image in enumerate(images):
        cls = f'class{i % 2}'
        for folder in (
            root / 'resisc45' / 'NWPU-RESISC45' / cls,
            root / 'patternnet' / 'PatternNet' / 'images' / cls,
        ):
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copy(image, folder / f'{cls}_{i}.jpg')
    for k, split in enumerate(('train', 'val', 'test')):  # both classes in each split
        part = [f'class0_{2 * k}.jpg', f'class1_{2 * k + 1}.jpg']
        (root / 'resisc45' / f'resisc45-{split}.txt').write_text('\n'.join(part) + '\n')
    shutil.copytree(data / 'mlrsnet' / 'MLRSNet', root / 'mlrsnet' / 'MLRSNet')
    shutil.copytree(data / 'rsd46whu' / 'RSD46-WHU', root / 'rsd46whu' / 'RSD46-WHU')
    shutil.copytree(ROOT / 'naip', root / 'naip')


def test_from_torchgeo(tmp_path: Path) -> None:
    _fake_torchgeo_sources(tmp_path)
    pile = GeoPile.from_torchgeo(tmp_path, size=24)
    assert pile.counts == {
        'naip': 6,
        'rsd46whu': 18,
        'mlrsnet': 15,
        'resisc45': 6,  # train + val + test lists
        'patternnet': 6,
    }
    assert pile[len(pile) - 1]['image'].shape == (3, 24, 24)
    subset = GeoPile.from_torchgeo(tmp_path, sources=['patternnet'], split='all')
    assert subset.sources == ('patternnet',)


def test_from_torchgeo_unknown_source(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown sources \\['millionaid'\\]"):
        GeoPile.from_torchgeo(tmp_path, sources=['millionaid'])


def test_from_torchgeo_missing_source(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match='MLRSNet not found'):
        GeoPile.from_torchgeo(tmp_path, sources=['mlrsnet'])


def test_undecodable_file_name(tmp_path: Path) -> None:
    """Names that are not valid UTF-8 (possible on Linux) are read and split."""
    folder = tmp_path / 'src' / 'cls'
    folder.mkdir(parents=True)
    image = ROOT / 'naip' / 'urban' / 'naip_urban_0000.jpg'
    shutil.copy(image, os.fsdecode(bytes(folder) + b'/caf\xe9.jpg'))
    shutil.copy(image, folder / 'b.JPG')
    ds = GeoPile(tmp_path)
    assert len(ds) == 2
    assert ds[1]['image'].dtype == torch.uint8
    held_out = GeoPile(tmp_path, split='val', val_fraction=0.5)
    assert len(held_out) + len(GeoPile(tmp_path, split='train', val_fraction=0.5)) == 2
