# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""GeoPile, the pretraining corpus of GFM, as a TorchGeo dataset."""

import math
import os
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from torch.utils.data import Dataset
from torchgeo.datasets import DatasetNotFoundError, NonGeoDataset
from torchgeo.datasets.utils import Sample

from .utils import ImageFinder, find_images, hash_fraction, is_image, read_rgb

#: What a source may be given as to :meth:`GeoPile.from_datasets`.
SourceSpec = str | os.PathLike[str] | Dataset[Any] | Sequence[Dataset[Any]]

#: Source folder names of :meth:`GeoPile.from_torchgeo` (paper Table 2 order).
TORCHGEO_SOURCES: tuple[str, ...] = (
    'naip',
    'rsd46whu',
    'mlrsnet',
    'resisc45',
    'patternnet',
)

_LAYOUT = (
    'expected the GeoPile layout: <root>/<source>/<class>/<image> (one folder per '
    'source, e.g. naip, rsd46whu, mlrsnet, resisc45, patternnet, each holding class '
    "sub-folders of JPEG/PNG/TIFF images), as in the authors' GeoPileV0 release. "
    'torchgeo_gfm.datasets.write_synthetic_geopile(root) writes a small synthetic '
    'example of it.'
)


class GeoPileLayoutError(DatasetNotFoundError):
    """Raised when a GeoPile root is missing, empty or laid out differently.

    .. versionadded:: 0.1
    """

    def __init__(self, message: str) -> None:
        """Initialize a new GeoPileLayoutError.

        Args:
            message: what was found, followed by the expected layout.
        """
        # TorchGeo words its message around a dataset's root; this error is raised while
        # the layout is checked, so ours replaces it (as ManualDownloadError does)
        super().__init__(Dataset())
        self.args = (f'{message}; {_LAYOUT}',)


def _dataset_files(source: str, spec: SourceSpec) -> list[str]:
    """Image files of one source given as a folder, a dataset or a list of datasets."""
    if isinstance(spec, str | os.PathLike):
        return find_images(spec)
    if isinstance(spec, Sequence) and not isinstance(spec, Dataset):
        return [f for ds in spec for f in _dataset_files(source, ds)]
    samples = getattr(spec, 'samples', None)  # ImageFolder and its TorchGeo subclasses
    if samples is None and isinstance(spec, GeoPile):
        return spec.files
    if samples is None:
        raise TypeError(
            f'GeoPile.from_datasets: source {source!r} is a {type(spec).__name__}, '
            'which lists no image files; give a folder path, an ImageFolder-style '
            'dataset with `.samples` (RESISC45, PatternNet, MLRSNet, RSD46WHU) or a '
            'GeoPile'
        )
    return [str(s[0]) for s in samples]


class GeoPile(NonGeoDataset):
    """GeoPile: the ~600k-image RGB pretraining corpus of GFM.

    GeoPile gathers five remote-sensing sources (paper Table 2): NAIP chips (300k, 1 m),
    RSD46-WHU (116,893), MLRSNet (109,161), RESISC45 (31,500) and PatternNet (30,400).
    Labels are not used for pretraining; each sample carries only the index of its source.

    Dataset format (the authors' release, GeoPileV0): ``root/<source>/<class>/<image>``;
    images at any depth under a source folder are used. JPEG, PNG, TIFF/GeoTIFF, BMP and
    WebP are read; grayscale, RGBA, 16-bit and multi-band images become RGB uint8 by the rule
    in :mod:`torchgeo_gfm.datasets.utils`. :meth:`from_torchgeo` and :meth:`from_datasets`
    compose the same corpus from the per-source TorchGeo datasets (or folders) instead.

    Robustness: a file that cannot be read (corrupt, truncated, vanished) or is degenerate
    (a constant or all-NaN 16-bit/float image) does not stop a run, however many there
    are. A warning names it once, it is remembered (across DataLoader workers, in shared
    memory) and a readable image takes its place: the first good one in an order drawn
    at random, seeded by ``seed`` and the index, so the replacement is reproducible and a
    whole folder of bad files is left quickly. Only when every file is bad is an error
    raised. :attr:`num_skipped` counts the bad files. When the files are listed, symlink
    loops are not followed, each file is taken once however it is reached, and folders
    that cannot be listed are named in a warning (see
    :class:`~torchgeo_gfm.datasets.utils.ImageFinder`).

    Validation: ``split='train'``/``'val'`` hold out ``val_fraction`` of the files, chosen
    by a hash of ``seed`` and each file's ``source/class/name``, so the split is stable
    when files are added, removed or the corpus is moved.

    If you use this dataset in your research, please cite the following paper:

    * https://arxiv.org/abs/2302.04476

    .. versionadded:: 0.1
    """

    splits: ClassVar[tuple[str, ...]] = ('all', 'train', 'val')

    def __init__(
        self,
        root: str | os.PathLike[str] = 'data',
        sources: Sequence[str] | None = None,
        split: Literal['all', 'train', 'val'] = 'all',
        val_fraction: float = 0.0,
        size: int | None = None,
        transforms: Callable[[Sample], Sample] | None = None,
        seed: int = 0,
    ) -> None:
        """Initialize a new GeoPile instance.

        Args:
            root: folder holding one sub-folder per source.
            sources: source folder names to use, in this order (their indices are the
                ``source`` of each sample); None uses every source folder, sorted.
            split: 'all', or 'train'/'val' to hold out ``val_fraction`` of the files.
            val_fraction: fraction of files in the 'val' split, in [0, 1).
            size: if given, each image becomes ``size`` x ``size`` when loaded (a random
                square of its shorter side, resized; JPEGs are decoded at reduced scale when
                large), so images of mixed sizes can be batched; None keeps native sizes.
            transforms: a function/transform that takes a sample and returns a
                transformed version.
            seed: seed of the train/val assignment.

        Raises:
            GeoPileLayoutError: if root is missing, empty, or a source is not found.
            ValueError: if split, val_fraction or size is invalid.
        """
        self.root: str | os.PathLike[str] | None = root
        names = self._source_folders(root, sources)
        finder = ImageFinder()
        files = {s: finder.find(os.path.join(root, s)) for s in names}
        finder.warn(root, stacklevel=2)
        if finder.unreadable and not any(files.values()):
            raise GeoPileLayoutError(
                f'no readable images under {os.fspath(root)!r}: folders that could not '
                f'be listed: {finder.unreadable[:5]}; give read and execute permission '
                '(chmod -R a+rX)'
            )
        empty = [s for s, f in files.items() if not f]
        if empty and len(empty) < len(files):
            warnings.warn(
                f'GeoPile: source folders {empty} in {os.fspath(root)!r} hold no images',
                UserWarning,
                stacklevel=2,
            )
        self._setup(files, split, val_fraction, size, transforms, seed)

    @staticmethod
    def _source_folders(
        root: str | os.PathLike[str], sources: Sequence[str] | None
    ) -> list[str]:
        """Names of the source folders to use, checked against those under ``root``."""
        if not os.path.isdir(root):
            raise GeoPileLayoutError(
                f'GeoPile root {os.fspath(root)!r} is not a folder'
            )
        try:
            entries = list(os.scandir(root))
        except OSError as error:
            raise GeoPileLayoutError(
                f'GeoPile root {os.fspath(root)!r} cannot be listed ({error}); give '
                'read and execute permission (chmod a+rX)'
            ) from error
        found = sorted(
            d.name for d in entries if d.is_dir() and not d.name.startswith('.')
        )
        if not found:
            loose = len([d for d in entries if is_image(d.name)])
            raise GeoPileLayoutError(
                f'GeoPile root {os.fspath(root)!r} has no source sub-folders'
                + (f' ({loose} images lie directly in it)' if loose else '')
            )
        missing = [s for s in sources or () if s not in found]
        if missing:
            raise GeoPileLayoutError(
                f'GeoPile sources {missing} not found in {os.fspath(root)!r} '
                f'(found source folders: {found})'
            )
        return list(sources) if sources is not None else found

    @classmethod
    def from_datasets(
        cls,
        sources: Mapping[str, SourceSpec],
        split: Literal['all', 'train', 'val'] = 'all',
        val_fraction: float = 0.0,
        size: int | None = None,
        transforms: Callable[[Sample], Sample] | None = None,
        seed: int = 0,
    ) -> 'GeoPile':
        """Compose GeoPile from per-source datasets or folders.

        For example ``{'resisc45': [RESISC45(r, split=s) for s in ('train', 'val',
        'test')], 'patternnet': PatternNet(r), 'mlrsnet': MLRSNet(r), 'rsd46whu':
        RSD46WHU(r), 'naip': 'data/geopile/naip'}``. Only the image files of each dataset
        are taken (their ``.samples``); images are read by GeoPile, with its format
        conversion and robustness.

        Args:
            sources: source name -> folder, ImageFolder-style dataset, GeoPile or a list
                of these; source indices follow the mapping's order.
            split: 'all', 'train' or 'val' (see the class docstring).
            val_fraction: fraction of files in the 'val' split, in [0, 1).
            size: see :class:`GeoPile`.
            transforms: a function/transform that takes a sample and returns a
                transformed version.
            seed: seed of the train/val assignment.

        Returns:
            The composed dataset.

        Raises:
            TypeError: if a source lists no image files.
            GeoPileLayoutError: if no source holds any image.
        """
        self = cls.__new__(cls)
        self.root = None
        files = {name: _dataset_files(name, spec) for name, spec in sources.items()}
        self._setup(files, split, val_fraction, size, transforms, seed)
        return self

    @classmethod
    def from_torchgeo(
        cls,
        root: str | os.PathLike[str] = 'data',
        sources: Sequence[str] = TORCHGEO_SOURCES,
        download: bool = False,
        checksum: bool = False,
        **kwargs: Any,
    ) -> 'GeoPile':
        """Compose GeoPile from the per-source TorchGeo datasets under ``root``.

        Each source lives in its own sub-folder, as its dataset class lays it out:
        ``root/resisc45`` (:class:`~torchgeo.datasets.RESISC45`, all three splits),
        ``root/patternnet`` (:class:`~torchgeo.datasets.PatternNet`), ``root/mlrsnet``
        (:class:`~torchgeo_gfm.datasets.MLRSNet`), ``root/rsd46whu``
        (:class:`~torchgeo_gfm.datasets.RSD46WHU`) and ``root/naip`` (chips written by
        ``torchgeo-gfm naip-chips --out root``).

        Args:
            root: parent folder of the source folders.
            sources: sources to include, in this order.
            download: download the sources that can be (RESISC45, PatternNet); the
                others explain what to fetch.
            checksum: verify downloads / dataset completeness (see each dataset).
            **kwargs: split, val_fraction, size, transforms, seed (see
                :meth:`from_datasets`).

        Returns:
            The composed dataset.

        Raises:
            ValueError: if a source name is unknown.

        .. versionadded:: 0.1
        """
        from torchgeo.datasets import RESISC45, PatternNet

        from .mlrsnet import MLRSNet
        from .rsd46whu import RSD46WHU

        unknown = sorted(set(sources) - set(TORCHGEO_SOURCES))
        if unknown:
            raise ValueError(
                f'unknown sources {unknown}; choose from {TORCHGEO_SOURCES}'
            )
        d, c = download, checksum
        builders: dict[str, Callable[[str], SourceSpec]] = {
            'naip': lambda r: r,
            'rsd46whu': lambda r: RSD46WHU(r, download=d, checksum=c),
            'mlrsnet': lambda r: MLRSNet(r, download=d, checksum=c),
            'resisc45': lambda r: [
                RESISC45(r, split, download=d, checksum=c)
                for split in ('train', 'val', 'test')
            ],
            'patternnet': lambda r: PatternNet(r, download=d, checksum=c),
        }
        specs = {s: builders[s](os.path.join(root, s)) for s in sources}
        return cls.from_datasets(specs, **kwargs)

    def _setup(
        self,
        files: Mapping[str, list[str]],
        split: str,
        val_fraction: float,
        size: int | None,
        transforms: Callable[[Sample], Sample] | None,
        seed: int,
    ) -> None:
        """Validate arguments, split the files and allocate the shared skip record."""
        if split not in self.splits:
            raise ValueError(f'split must be one of {self.splits}, got {split!r}')
        if not 0 <= val_fraction < 1:
            raise ValueError(f'val_fraction must be in [0, 1), got {val_fraction}')
        if size is not None and size < 1:
            raise ValueError(f'size must be a positive int or None, got {size}')
        if not any(files.values()):
            where = f'under {os.fspath(self.root)!r}' if self.root is not None else ''
            raise GeoPileLayoutError(
                f'no images found {where} in sources {list(files)}'
            )
        self.sources: tuple[str, ...] = tuple(files)
        self.split, self.val_fraction, self.seed = split, val_fraction, seed
        self.size, self.transforms = size, transforms
        paths, source_ids = [], []
        for i, name in enumerate(self.sources):
            kept = [f for f in files[name] if self._in_split(f)]
            paths.extend(kept)
            source_ids.extend([i] * len(kept))
        # one byte buffer + offsets, not a list of str: workers do not copy it on access
        # (refcounts) and it costs the paths' total length, not their longest x count
        encoded = [os.fsencode(p) for p in paths]  # any file name the OS allows
        self._blob = np.frombuffer(b''.join(encoded), dtype=np.uint8)
        self._offsets = np.cumsum([0, *map(len, encoded)], dtype=np.int64)
        self._source_ids = np.array(source_ids, dtype=np.int16)
        self._bad = torch.zeros(len(paths), dtype=torch.bool).share_memory_()

    def _in_split(self, path: str) -> bool:
        """Whether a file belongs to this split (hash of its last three path parts)."""
        if self.split == 'all':
            return True
        held_out = hash_fraction('/'.join(Path(path).parts[-3:]), self.seed)
        return (held_out < self.val_fraction) == (self.split == 'val')

    def __len__(self) -> int:
        """Return the number of images in this split.

        Returns:
            length of the dataset
        """
        return len(self._offsets) - 1

    def __getitem__(self, index: int) -> Sample:
        """Return an image and its source; a bad file is replaced by a readable one.

        Args:
            index: index to return

        Returns:
            ``{'image': uint8 [3, H, W], 'source': int64 scalar}``

        Raises:
            IndexError: if index is out of range.
            RuntimeError: if every file of the dataset is unreadable or degenerate.
        """
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f'index {index} out of range for GeoPile of length {n}')
        for i in self._candidates(index % n):
            if self._bad[i]:
                continue
            try:
                image = read_rgb(self.file(i), self.size)
            except Exception as error:  # noqa: BLE001 (any decoder error: bad data, not a bug)
                self._skip(i, error)
                continue
            sample = {'image': image, 'source': torch.tensor(int(self._source_ids[i]))}
            return self.transforms(sample) if self.transforms is not None else sample
        raise RuntimeError(
            f'GeoPile: all {n} images are unreadable or degenerate (each was warned '
            'about); check the disk and the files under '
            f'{os.fspath(self.root) if self.root is not None else "the sources"}'
        )

    def _candidates(self, index: int) -> Iterator[int]:
        """``index``, then every index once in a random order seeded by seed and index.

        The order is an affine walk ``(start + k * stride) mod n`` with ``stride``
        coprime to ``n``: O(1) memory, visits each index exactly once, and a random
        stride jumps out of a run of bad files (one broken class folder) at once. The
        first readable file in it does not depend on which files are already known to
        be bad, so the replacement is the same in every worker and after a resume.
        """
        yield index
        n = len(self)
        rng = np.random.default_rng([self.seed % 2**32, index])
        start = int(rng.integers(n))
        stride = int(rng.integers(1, n)) if n > 1 else 1
        while math.gcd(stride, n) != 1:  # ends at n - 1 at the latest
            stride += 1
        for k in range(n):
            yield (start + k * stride) % n

    def _skip(self, i: int, error: Exception) -> None:
        """Record a bad file and warn about it once."""
        if self._bad[i]:
            return
        self._bad[i] = True
        path = self.file(i)
        warnings.warn(
            f'GeoPile: skipping bad image {path} ({type(error).__name__}: '
            f'{error}); a readable image replaces it (counted in num_skipped). Fix or '
            'delete the file.',
            UserWarning,
            stacklevel=3,
        )

    def file(self, index: int) -> str:
        """Path of the image at ``index``.

        Args:
            index: sample index.

        Returns:
            The file path.

        .. versionadded:: 0.1
        """
        start, stop = self._offsets[index], self._offsets[index + 1]
        return os.fsdecode(self._blob[start:stop].tobytes())

    @property
    def files(self) -> list[str]:
        """Paths of all images of this split, in index order.

        .. versionadded:: 0.1
        """
        return [self.file(i) for i in range(len(self))]

    @property
    def num_skipped(self) -> int:
        """Number of distinct unreadable files met so far (in all workers).

        .. versionadded:: 0.1
        """
        return int(self._bad.sum())

    @property
    def skipped_files(self) -> list[str]:
        """Paths of the unreadable files met so far (in all workers).

        .. versionadded:: 0.1
        """
        return [self.file(int(i)) for i in torch.nonzero(self._bad).flatten()]

    @property
    def counts(self) -> dict[str, int]:
        """Number of images of each source in this split.

        .. versionadded:: 0.1
        """
        per = np.bincount(self._source_ids, minlength=len(self.sources))
        return {s: int(c) for s, c in zip(self.sources, per, strict=True)}

    def __str__(self) -> str:
        """Per-source counts, for logs."""
        counts = ', '.join(f'{s}: {c}' for s, c in self.counts.items())
        return f'GeoPile(split={self.split!r}, {len(self)} images; {counts})'

    def plot(
        self, sample: Sample, show_titles: bool = True, suptitle: str | None = None
    ) -> Figure:
        """Plot a sample from the dataset.

        Args:
            sample: a sample returned by :meth:`__getitem__` (uint8 or float image).
            show_titles: flag indicating whether to show the source as title.
            suptitle: optional string to use as a suptitle.

        Returns:
            a matplotlib Figure with the rendered sample
        """
        image = sample['image'].permute(1, 2, 0).float()
        if image.max() > 1:
            image = image / 255
        fig, ax = plt.subplots(figsize=(4, 4))
        ax.imshow(image.clamp(0, 1).numpy())
        ax.axis('off')
        if show_titles and 'source' in sample:
            ax.set_title(self.sources[int(sample['source'])])
        if suptitle is not None:
            plt.suptitle(suptitle)
        return fig
