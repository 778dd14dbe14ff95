#!/usr/bin/env python3

# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Images/second per CPU worker: GeoPile loading vs the authors' GFM pipeline.

Both pipelines run in this process with one thread (what one DataLoader worker gets),
over the same GeoPile-layout folder of JPEGs, including read, decode, per-sample work and
collate:

* authors: torchvision ``ImageFolder`` per source + ``ConcatDataset``; per sample PIL
  ``RandomResizedCrop(192, scale=(0.67, 1), ratio=(3/4, 4/3))``, ``RandomHorizontalFlip``,
  ``ToTensor``, ``Normalize`` (ImageNet), as in ``data/data_simmim.py`` of the GFM
  release (its SimMIM mask generator, also run per sample there, is left out: the baseline
  is, if anything, flattered).
* ours: :class:`~torchgeo_gfm.datasets.GeoPile` with ``size=256`` (PIL decode, JPEGs at reduced DCT scale when large, random square
  crop + resize only when an image is not already 256 px, uint8 collate). The
  augmentation then runs batched on the device (``GeoPileDataModule.on_after_batch_
  transfer``); its throughput is printed separately, on the device found.

Streaming (``--no-streaming`` skips it): the first folder is written as litdata shards to a
local S3 server (moto) and read back with
:class:`~torchgeo_gfm.datasets.GeoPileStreamingDataset` (same decoding, 256 px, uint8).
Each of ``--repeats`` rounds reads, back to back, the folders, the shards into a fresh
empty cache (cold: the epoch pays the download) and the same cache again (warm); medians
are reported, with ratios to folders. The first epoch's download cost is cold minus warm
seconds, next to the server's raw MB/s; on a small set most of it is a fixed start-up
(litdata builds a boto3 client for its object-store reader before the first shard), which
a real epoch amortizes. Shards default to ``--chunk-bytes 2MB``, not the
64MB of real runs: the generated set is only ~10 MB, and one shard would make the first
item wait for the whole download, whereas over hundreds of shards litdata downloads the
next ones in a background thread while the current one is decoded; a few small shards
reproduce that overlap. The folders were just written, so they are read from the OS page
cache; on a cluster's shared filesystem folder reading is typically much slower, which
this machine cannot emulate fairly.

Multispectral (``--chips 0`` skips it): Sentinel-2 L1C chips in TorchGeo's SSL4EO-S12 layout
(13 single-band uint16 GeoTIFFs per season, 264/132/44 px for the 10/20/60 m bands as the
release stores them, 2 seasons per location, random values, uncompressed) read, one season per
sample, by TorchGeo's own ``SSL4EOS12(seasons=1)`` and by ours,
:class:`~torchgeo_gfm.datamodules.ssl4eo.SSL4EOS12Season` (what
``SSL4EOS12PretrainDataModule`` loads with: the same pixels, kept uint16, no folder listing
by GDAL at each open), same chips, same rounds, collate included.

Usage: ``python benchmarks/data_throughput.py [--root GEOPILE] [--images 500]``. Without
``--root``, realistic JPEGs (procedural aerial-like scenes, quality 90, ~21 kB at 256 px)
are generated in a temporary folder at 256 px and at larger sizes.
"""

import argparse
import contextlib
import logging
import os
import socket
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import torch
import torchvision.transforms as T
from rasterio.transform import from_origin
from torch.utils.data import ConcatDataset, DataLoader, Dataset, IterableDataset, Subset
from torchgeo.datasets import SSL4EOS12
from torchvision.datasets import ImageFolder

from torchgeo_gfm.datamodules import GeoPileDataModule
from torchgeo_gfm.datamodules.ssl4eo import SSL4EOS12Season
from torchgeo_gfm.datasets import GeoPile, write_synthetic_geopile
from torchgeo_gfm.datasets.synthetic import SCENES, SYNTHETIC_SOURCES
from torchgeo_gfm.sensors import get_sensor

#: Sentinel-2 L1C bands and their native resolution (m), as SSL4EO-S12 stores them
S2_RESOLUTION = {
    'B1': 60, 'B2': 10, 'B3': 10, 'B4': 10, 'B5': 20, 'B6': 20, 'B7': 20,
    'B8': 10, 'B8A': 20, 'B9': 60, 'B10': 60, 'B11': 20, 'B12': 20,
}  # fmt: skip

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def authors_dataset(root: Path) -> Dataset[object]:
    """The GFM release's pretraining dataset: ImageFolder per source, concatenated."""
    transform = T.Compose(
        [
            T.Lambda(lambda img: img.convert('RGB') if img.mode != 'RGB' else img),
            T.RandomResizedCrop(192, scale=(0.67, 1.0), ratio=(3 / 4, 4 / 3)),
            T.RandomHorizontalFlip(),
            T.ToTensor(),
            T.Normalize(
                mean=torch.tensor(IMAGENET_MEAN), std=torch.tensor(IMAGENET_STD)
            ),
        ]
    )
    sources = sorted(p for p in root.iterdir() if p.is_dir())
    return ConcatDataset([ImageFolder(str(s), transform) for s in sources])


def ours_dataset(root: Path) -> Dataset[object]:
    """GeoPile as GeoPileDataModule builds it (load_size 256)."""
    return GeoPile(root, size=256)


def images_per_second(dataset: Dataset[object], batch_size: int) -> float:
    """Iterate once over ``dataset`` in this process; images per second."""
    if isinstance(dataset, IterableDataset):  # litdata shuffles shards itself
        from litdata import StreamingDataLoader

        loader: DataLoader[object] = StreamingDataLoader(
            dataset, batch_size=batch_size, num_workers=0
        )
    else:
        loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=0)
    start, count = time.perf_counter(), 0
    for batch in loader:
        images = batch['image'] if isinstance(batch, dict) else batch[0]
        count += len(images)
    return count / (time.perf_counter() - start)


def device_augmentation(batch_size: int, repeats: int) -> tuple[str, float]:
    """Images/second of GeoPileDataModule's training augmentation on the device."""
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    dm = GeoPileDataModule(batch_size=batch_size)
    aug = dm.train_aug.to(device)
    batch = torch.randint(0, 256, (batch_size, 3, 256, 256), dtype=torch.uint8)
    batch = batch.to(device)
    times = []
    for _ in range(repeats + 1):
        if device == 'cuda':
            torch.cuda.synchronize()
        start = time.perf_counter()
        aug({'image': batch.float()})
        if device == 'cuda':
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    name = torch.cuda.get_device_name() if device == 'cuda' else 'CPU, 1 thread'
    return name, batch_size / statistics.median(times[1:])


def generate(root: Path, size: int, images: int, seed: int) -> Path:
    """Write ``images`` JPEGs of ``size`` px in the GeoPile layout."""
    per_class = max(1, images // (len(SYNTHETIC_SOURCES) * len(SCENES)))
    return write_synthetic_geopile(
        root / f'jpeg{size}',
        images_per_class=per_class,
        sizes=(size,),
        formats=False,
        seed=seed,
    )


def measure(root: Path, batch_size: int, repeats: int) -> tuple[int, float, float]:
    """Median images/s of both pipelines, interleaved to share the machine's noise."""
    pipelines: dict[str, Callable[[Path], Dataset[object]]] = {
        'authors': authors_dataset,
        'ours': ours_dataset,
    }
    rates: dict[str, list[float]] = {name: [] for name in pipelines}
    datasets = {name: make(root) for name, make in pipelines.items()}
    for _ in range(repeats):
        for name, dataset in datasets.items():
            rates[name].append(images_per_second(dataset, batch_size))
    n = len(datasets['ours'])  # type: ignore[arg-type]
    return n, statistics.median(rates['authors']), statistics.median(rates['ours'])


def generate_ssl4eo_s12(root: Path, chips: int, seed: int) -> Path:
    """Write ``chips`` SSL4EO-S12 L1C locations (2 seasons each) in TorchGeo's layout."""
    rng = np.random.default_rng(seed)
    seasons = (
        '20200314T102021_20200314T102021_T33UVP',
        '20200612T101559_20200612T101559_T33UVP',
    )
    for location in range(chips):
        for season in seasons:
            folder = root / 's2c' / f'{location:07}' / season
            folder.mkdir(parents=True)
            for band, res in S2_RESOLUTION.items():
                side = 2640 // res
                profile = {
                    'driver': 'GTiff', 'width': side, 'height': side, 'count': 1,
                    'dtype': 'uint16', 'crs': 'EPSG:32633',
                    'transform': from_origin(500000, 5300000, res, res),
                }  # fmt: skip
                with rasterio.open(folder / f'{band}.tif', 'w', **profile) as f:
                    f.write(rng.integers(0, 10000, (1, side, side), dtype=np.uint16))
    return root


def multispectral(
    root: Path, chips: int, batch_size: int, repeats: int
) -> tuple[float, float]:
    """Median chips/s of TorchGeo's SSL4EOS12 and ours, interleaved rounds."""
    datasets: dict[str, Dataset[object]] = {
        # TorchGeo's length is the full release's; read the chips that exist
        'torchgeo': Subset(SSL4EOS12(root, 's2c', seasons=1), range(chips)),
        'ours': SSL4EOS12Season(get_sensor('s2_l1c'), root=root, split='s2c'),
    }
    rates: dict[str, list[float]] = {name: [] for name in datasets}
    for _ in range(repeats):
        for name, dataset in datasets.items():
            rates[name].append(images_per_second(dataset, batch_size))
    return statistics.median(rates['torchgeo']), statistics.median(rates['ours'])


@contextlib.contextmanager
def local_s3(bucket: str) -> Iterator[Any]:
    """A moto S3 server on 127.0.0.1 holding an empty ``bucket``; yields a boto3 client.

    Needs ``pip install torchgeo-gfm[tests]``. boto3 and litdata find the server through
    the standard environment variables, set here.
    """
    import boto3
    from moto.server import ThreadedMotoServer

    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    logging.getLogger('werkzeug').setLevel(logging.WARNING)  # one line per request
    server = ThreadedMotoServer(ip_address='127.0.0.1', port=port, verbose=False)
    server.start()
    os.environ.update(
        AWS_ENDPOINT_URL=f'http://127.0.0.1:{port}',
        AWS_ACCESS_KEY_ID='bench',
        AWS_SECRET_ACCESS_KEY='bench',
        AWS_DEFAULT_REGION='us-east-1',
    )
    try:
        client = boto3.client('s3')
        client.create_bucket(Bucket=bucket)
        yield client
    finally:
        server.stop()


def streaming(
    root: Path, tmp: Path, batch_size: int, repeats: int, chunk_bytes: str
) -> tuple[list[tuple[str, float]], list[str]]:
    """Images/s streaming ``root``'s shards from a local S3 server vs its folders.

    Each round reads the folders (GeoPile), then the shards into a fresh empty cache
    (cold: pays the download), then that cache again (warm), in this process with one
    thread, as one worker.

    Returns:
        (label, median images/s) rows, folders first; lines describing the shards and
        the first epoch's download cost.
    """
    from torchgeo_gfm.datasets import GeoPileStreamingDataset, write_geopile_shards

    folders = ours_dataset(root)
    rates: dict[str, list[float]] = {'folders': [], 'cold': [], 'warm': []}
    costs, server = [], []
    with local_s3('bench') as client:
        start = time.perf_counter()
        write_geopile_shards(root, 's3://bench/geopile', chunk_bytes=chunk_bytes)
        shard_s = time.perf_counter() - start
        objects = client.list_objects_v2(Bucket='bench')['Contents']
        sizes = {o['Key']: o['Size'] for o in objects if o['Key'].endswith('.bin')}
        mb = sum(sizes.values()) / 1e6
        for r in range(repeats):
            rates['folders'].append(images_per_second(folders, batch_size))
            dataset = GeoPileStreamingDataset(
                's3://bench/geopile', size=256, cache_dir=str(tmp / f'cache{r}')
            )
            for epoch in ('cold', 'warm'):
                rates[epoch].append(images_per_second(dataset, batch_size))
            n = len(dataset)
            costs.append(n / rates['cold'][-1] - n / rates['warm'][-1])
            start = time.perf_counter()
            for key in sizes:  # the server alone: every shard, one GET each
                client.get_object(Bucket='bench', Key=key)['Body'].read()
            server.append(mb / (time.perf_counter() - start))
    rate = {name: statistics.median(values) for name, values in rates.items()}
    cost, mbs = statistics.median(costs), statistics.median(server)
    rows = [
        ('folders (GeoPile)', rate['folders']),
        ('streaming, epoch 1 (download into an empty cache)', rate['cold']),
        ('streaming, epoch 2 (local cache)', rate['warm']),
    ]
    notes = [
        (
            f'shards: {len(sizes)} x <= {chunk_bytes} (largest '
            f'{max(sizes.values()) / 1e6:.1f} MB), {mb:.1f} MB for {n} images; '
            f'sharding took {shard_s:.1f} s'
        ),
        (
            f'first-epoch download cost (cold - warm seconds, median): {cost:+.2f} s, '
            f'{cost * rate["warm"] / n:+.0%} of a warm epoch; the local server serves '
            f'{mbs:.0f} MB/s (one GET per shard), i.e. {mb / mbs:.2f} s for the '
            f'{mb:.1f} MB were nothing overlapped with decoding'
        ),
    ]
    return rows, notes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--root', type=Path, help='existing GeoPile folder to read')
    parser.add_argument('--images', type=int, default=500, help='generated per size')
    parser.add_argument('--sizes', type=int, nargs='+', default=[256, 512, 800])
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--chips',
        type=int,
        default=128,
        help='SSL4EO-S12 locations generated for the multispectral row (0: skip it)',
    )
    parser.add_argument(
        '--no-streaming',
        dest='streaming',
        action='store_false',
        help='skip litdata streaming from a local S3 server (needs moto)',
    )
    parser.add_argument(
        '--chunk-bytes',
        default='2MB',
        help='shard size for streaming (real runs: 64MB over many more images)',
    )
    args = parser.parse_args()
    torch.set_num_threads(1)  # one DataLoader worker = one process, one thread

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        roots = (
            [(str(args.root), args.root)]
            if args.root
            else [
                (f'{s}x{s} JPEG', generate(Path(tmp), s, args.images, args.seed))
                for s in args.sizes
            ]
        )
        for label, root in roots:
            n, authors, ours = measure(root, args.batch_size, args.repeats)
            rows.append((label, n, authors, ours))
        stream, notes = (
            streaming(
                roots[0][1], Path(tmp), args.batch_size, args.repeats, args.chunk_bytes
            )
            if args.streaming
            else ([], [])
        )
        ms = (
            multispectral(
                generate_ssl4eo_s12(Path(tmp) / 'ssl4eo', args.chips, args.seed),
                args.chips,
                args.batch_size,
                args.repeats,
            )
            if args.chips
            else None
        )

    print(
        f'\nimages/second per CPU worker (1 thread, batch {args.batch_size}, median of '
        f'{args.repeats})\n'
    )
    print(
        '| images | n | authors (PIL RRC+ToTensor+Normalize) | ours (GeoPile, uint8) | ratio |'
    )
    print('|---|---|---|---|---|')
    for label, n, authors, ours in rows:
        print(f'| {label} | {n} | {authors:.0f} | {ours:.0f} | {ours / authors:.2f}x |')
    if ms is not None:
        theirs, ours = ms
        print(
            f'\nmultispectral: SSL4EO-S12 L1C, 13 uint16 bands, one season per chip '
            f'({args.chips} chips; chips/s per worker, 1 thread, batch {args.batch_size}, '
            f'median of {args.repeats})\n'
        )
        print(
            '| chips | TorchGeo SSL4EOS12(seasons=1) | ours (SSL4EOS12Season) | ratio |'
        )
        print('|---|---|---|---|')
        print(
            f'| 264 px, 13 bands | {theirs:.0f} | {ours:.0f} | {ours / theirs:.2f}x |'
        )
    if stream:
        print(
            f'\nstreaming from a local S3 server vs folders ({roots[0][0]}; medians of '
            f'{args.repeats} interleaved rounds; folders just written, so read from the '
            'OS page cache: a shared cluster filesystem is typically much slower)\n'
        )
        print('| reading | images/s per worker | ratio to folders |')
        print('|---|---|---|')
        folders = stream[0][1]
        for label, rate in stream:
            print(f'| {label} | {rate:.0f} | {rate / folders:.2f}x |')
        print('\n' + '\n'.join(notes))
    device, rate = device_augmentation(args.batch_size, args.repeats)
    print(
        f'\nours, device side: Kornia RRC(192)+flip+normalize on {device}: '
        f'{rate:.0f} images/s (one process, batched)'
    )


if __name__ == '__main__':
    main()
