# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""GeoPile refuses or warns about bad input, and survives any number of bad files."""

import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader

import torchgeo_gfm.datasets.geopile as geopile_module
from torchgeo_gfm.datasets import GeoPile, GeoPileLayoutError
from torchgeo_gfm.datasets.utils import find_images


def _image(path: Path, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(path)
    return path


def _tiff(path: Path, array: np.ndarray) -> Path:
    profile = {'driver': 'GTiff', 'dtype': array.dtype.name, 'count': len(array)}
    h, w = array.shape[1:]
    with (
        warnings.catch_warnings(action='ignore'),  # not georeferenced
        rasterio.open(path, 'w', height=h, width=w, **profile) as dst,
    ):
        dst.write(array)
    return path


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """root/src/{a,b}/<image>: two class folders of one image each."""
    _image(tmp_path / 'src' / 'a' / 'a.png', seed=1)
    _image(tmp_path / 'src' / 'b' / 'b.png', seed=2)
    return tmp_path


def _names(ds: GeoPile) -> list[str]:
    return sorted(Path(f).name for f in ds.files)


class TestSymlinks:
    def test_loop_counted_once(self, root: Path) -> None:
        (root / 'src' / 'a' / 'up').symlink_to('..')
        with pytest.warns(UserWarning, match=r'a[/\\]up -> .*src \(a symlink loop'):
            ds = GeoPile(root)
        assert _names(ds) == ['a.png', 'b.png']

    def test_two_loops_end(self, root: Path) -> None:
        """Two loops multiply paths exponentially when followed naively (a hang)."""
        (root / 'src' / 'a' / 'up').symlink_to('..')
        (root / 'src' / 'b' / 'top').symlink_to('../..')
        with pytest.warns(UserWarning, match='2 directory link'):
            ds = GeoPile(root)
        assert _names(ds) == ['a.png', 'b.png']

    def test_duplicate_link_counted_once(self, root: Path) -> None:
        (root / 'src' / 'again').symlink_to('a')
        with pytest.warns(UserWarning, match=r'again -> .*a \(already included\)'):
            ds = GeoPile(root)
        assert _names(ds) == ['a.png', 'b.png']
        assert all('again' not in f for f in ds.files)  # the real path is kept

    def test_link_to_outside_followed(self, root: Path, tmp_path: Path) -> None:
        outside = _image(tmp_path / 'elsewhere' / 'c.png').parent
        (root / 'src' / 'c').symlink_to(outside)
        with warnings.catch_warnings():
            warnings.simplefilter('error')  # nothing to warn about
            ds = GeoPile(root, sources=['src'])
        assert _names(ds) == ['a.png', 'b.png', 'c.png']

    def test_file_links_and_hard_links_counted_once(self, root: Path) -> None:
        (root / 'src' / 'a' / 'link.png').symlink_to(root / 'src' / 'b' / 'b.png')
        os.link(root / 'src' / 'a' / 'a.png', root / 'src' / 'b' / 'hard.png')
        assert [Path(f).name for f in find_images(root)] == ['a.png', 'b.png']

    def test_broken_link_named(self, root: Path) -> None:
        (root / 'src' / 'a' / 'gone.png').symlink_to(root / 'missing.png')
        with pytest.warns(UserWarning, match=r'1 image link.*gone\.png'):
            ds = GeoPile(root)
        assert _names(ds) == ['a.png', 'b.png']

    def test_source_linking_to_another(self, root: Path) -> None:
        (root / 'same').symlink_to('src')
        with (
            pytest.warns(UserWarning, match=r"\['same'\] .* hold no images"),
            pytest.warns(UserWarning, match=r'same -> .*src \(already included\)'),
        ):
            ds = GeoPile(root, sources=['src', 'same'])
        assert ds.counts == {'src': 2, 'same': 0}


@pytest.fixture
def unlistable(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path], None]:
    """Make os.scandir refuse a folder, as chmod 000 does for a user that is not root."""
    refused: set[str] = set()
    scandir = os.scandir

    def fake(path: str | os.PathLike[str] = '.') -> Iterator[os.DirEntry[str]]:
        if os.fspath(path) in refused:
            raise PermissionError(13, 'Permission denied', os.fspath(path))
        return scandir(path)

    monkeypatch.setattr(os, 'scandir', fake)
    return lambda path: refused.add(os.fspath(path))


class TestPermissions:
    def test_unlistable_folder_named(
        self, root: Path, unlistable: Callable[[Path], None]
    ) -> None:
        unlistable(root / 'src' / 'b')
        with pytest.warns(UserWarning, match=r'1 folder\(s\) could not be listed.*b '):
            ds = GeoPile(root)
        assert _names(ds) == ['a.png']

    def test_nothing_listable(
        self, root: Path, unlistable: Callable[[Path], None]
    ) -> None:
        unlistable(root / 'src')
        with (
            pytest.warns(UserWarning, match='could not be listed'),
            pytest.raises(GeoPileLayoutError, match=r'no readable images.*src'),
        ):
            GeoPile(root)

    def test_unlistable_root(
        self, root: Path, unlistable: Callable[[Path], None]
    ) -> None:
        unlistable(root)
        with pytest.raises(GeoPileLayoutError, match='cannot be listed'):
            GeoPile(root)

    @pytest.mark.skipif(
        os.name != 'posix' or os.geteuid() == 0, reason='root reads chmod 000 folders'
    )
    def test_chmod_000(self, root: Path) -> None:
        folder = root / 'src' / 'b'
        folder.chmod(0)
        try:
            with pytest.warns(UserWarning, match='could not be listed'):
                ds = GeoPile(root)
        finally:
            folder.chmod(0o755)
        assert _names(ds) == ['a.png']


class TestDegenerateImages:
    @pytest.mark.parametrize(
        ('array', 'match'),
        [
            (np.full((3, 8, 8), 1234, np.uint16), 'constant uint16 image'),
            (np.full((1, 8, 8), np.nan, np.float32), 'no finite pixel'),
        ],
    )
    def test_skipped_and_counted(
        self, root: Path, array: np.ndarray, match: str
    ) -> None:
        bad = _tiff(root / 'src' / 'a' / '0_flat.tif', array)
        ds = GeoPile(root)
        with pytest.warns(
            UserWarning, match=rf'skipping bad image .*0_flat\.tif.*{match}'
        ):
            sample = ds[ds.files.index(str(bad))]
        assert sample['image'].float().std() > 0  # a real image took its place
        assert ds.skipped_files == [str(bad)]

    def test_16bit_dynamic_range_used(self, root: Path) -> None:
        ramp = np.linspace(200, 3000, 3 * 64).reshape(3, 8, 8).astype(np.uint16)
        path = _tiff(root / 'src' / 'a' / 'ramp.tif', ramp)
        ds = GeoPile(root)
        image = ds[ds.files.index(str(path))]['image']
        assert image.min() == 0
        assert image.max() == 255


@pytest.fixture
def bad_folder(root: Path) -> Path:
    """root/src/{a,b} readable, root/bad/broken: 40 corrupt files (the old limit was 16)."""
    folder = root / 'bad' / 'broken'
    folder.mkdir(parents=True)
    for i in range(40):
        (folder / f'{i:02d}.jpg').write_bytes(b'not a jpeg')
    return root


class TestManyBadFiles:
    @pytest.mark.parametrize('num_workers', [0, 2])
    def test_epoch_survives(self, bad_folder: Path, num_workers: int) -> None:
        ds = GeoPile(bad_folder, sources=['bad', 'src'])
        loader = DataLoader(ds, batch_size=7, num_workers=num_workers, shuffle=True)
        with warnings.catch_warnings(action='ignore'):
            sources = torch.cat([batch['source'] for batch in loader])
        assert len(sources) == 42
        assert set(sources.tolist()) == {1}  # every sample a readable image of 'src'
        assert ds.num_skipped == 40  # counted across workers

    def test_replacement_is_reproducible(self, bad_folder: Path) -> None:
        """The stand-in for a bad file does not depend on which files are known bad."""
        fresh, warm = GeoPile(bad_folder), GeoPile(bad_folder)
        with warnings.catch_warnings(action='ignore'):
            for i in range(len(warm)):
                warm[i]
            for i in (0, 17, 39):
                assert torch.equal(fresh[i]['image'], warm[i]['image'])

    def test_all_bad(self, bad_folder: Path) -> None:
        ds = GeoPile(bad_folder, sources=['bad'])
        with (
            warnings.catch_warnings(action='ignore'),
            pytest.raises(RuntimeError, match='all 40 images are unreadable'),
        ):
            ds[5]
        assert ds.num_skipped == 40


N_FILES = 24


@pytest.fixture(scope='module')
def blank_files(tmp_path_factory: pytest.TempPathFactory) -> GeoPile:
    """A GeoPile of empty files, read by a fake reader (no decoding in the loop)."""
    folder = tmp_path_factory.mktemp('pile') / 'src' / 'cls'
    folder.mkdir(parents=True)
    for i in range(N_FILES):
        (folder / f'{i:02d}.png').touch()
    return GeoPile(folder.parent.parent)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    bad=st.sets(st.integers(0, N_FILES - 1)),
    index=st.integers(-N_FILES, N_FILES - 1),
    seed=st.integers(-(2**40), 2**40),
)
def test_any_bad_set(
    blank_files: GeoPile,
    monkeypatch: pytest.MonkeyPatch,
    bad: set[int],
    index: int,
    seed: int,
) -> None:
    """A good file is returned whatever files are bad; an error only if all are."""
    ds = blank_files
    ds._bad.zero_()
    ds.seed = seed

    def read(path: str, size: int | None) -> Tensor:
        i = int(Path(path).stem)
        if i in bad:
            raise OSError('corrupt')
        return torch.full((3, 1, 1), i, dtype=torch.uint8)

    monkeypatch.setattr(geopile_module, 'read_rgb', read)
    with warnings.catch_warnings(action='ignore'):
        if len(bad) == N_FILES:
            with pytest.raises(RuntimeError, match='all 24 images'):
                ds[index]
            return
        got = int(ds[index]['image'][0, 0, 0])
    assert got not in bad
    assert got == index % N_FILES or index % N_FILES in bad
