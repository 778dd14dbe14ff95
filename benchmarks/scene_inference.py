# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Scene prediction: the full pipeline against the model's forward alone, same tiles, same run.

Full pipeline = windowed reads, normalisation, model, blending, COG writing (and the COG
copy with overviews). Baseline = the model on the same tiles already in memory. Each scene
size runs in its own process, so peak memory (max RSS) is per size: it should stay flat
for scenes 4x and 16x larger.

    python benchmarks/scene_inference.py [--model unet --backbone resnet18] [--tile 256]
        [--precision fp32|bf16|auto]

Both sides run in the same precision (fp32 by default, as ``predict``).

``--backends`` instead compares runtimes on the same scene and model, same run: the
checkpoint in PyTorch eager fp32 (the baseline), eager bf16 (where the CPU computes it
natively), and the model exported to ONNX (onnxruntime) and to a torch.export ``.pt2``:
load time, whole-scene tiles/s, and how far each output is from the baseline's.

    python benchmarks/scene_inference.py --backends [--backbone tu-gfm_swin_base]
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
import torch
from lightning.pytorch import Trainer
from rasterio.transform import from_origin
from torchgeo.tasks import SemanticSegmentation

from torchgeo_gfm.export import export_model, load_exported
from torchgeo_gfm.precision import native_bf16
from torchgeo_gfm.scene import TileGrid, load_predictor, predict_scene
from torchgeo_gfm.scene.engine import model_only

#: --backends rows: (name, model file, precision)
BACKENDS = (
    ('PyTorch eager fp32', 'model.ckpt', 'fp32'),
    ('PyTorch eager bf16', 'model.ckpt', 'bf16'),
    ('onnxruntime (CPU)', 'model.onnx', 'fp32'),
    ('torch.export .pt2', 'model.pt2', 'fp32'),
)


def make_checkpoint(path: Path, model: str, backbone: str) -> None:
    task = SemanticSegmentation(model=model, backbone=backbone, num_classes=6)
    trainer = Trainer(accelerator='cpu', logger=False, enable_checkpointing=False)
    trainer.strategy.connect(task)
    trainer.save_checkpoint(path)
    ckpt = torch.load(path, weights_only=True)
    ckpt['datamodule_hyper_parameters'] = {
        'mean': [123.7, 116.3, 103.5],
        'std': [58.4, 57.1, 57.4],
    }
    torch.save(ckpt, path)


def make_scene(path: Path, size: int) -> None:
    rng = np.random.default_rng(0)
    with rasterio.open(
        path,
        'w',
        driver='GTiff',
        count=3,
        height=size,
        width=size,
        dtype='uint8',
        crs='EPSG:32618',
        transform=from_origin(583000, 4507000, 1, 1),
        tiled=True,
        compress='deflate',
    ) as dst:
        for y in range(0, size, 512):
            h = min(512, size - y)
            block = rng.integers(0, 255, (3, h, size), dtype=np.uint8)
            dst.write(block, window=rasterio.windows.Window(0, y, size, h))


def one(args: argparse.Namespace) -> dict[str, float]:
    torch.set_num_threads(args.threads)
    tmp = Path(args.workdir)
    scene = tmp / f'scene_{args.size}.tif'
    make_scene(scene, args.size)
    predictor = load_predictor(tmp / 'model.ckpt')
    # warm-up (first call allocates, picks kernels)
    predictor(torch.zeros(1, 1, 3, args.tile, args.tile))
    start = time.perf_counter()
    result = predict_scene(
        predictor,
        [scene],
        tmp / f'out_{args.size}.tif',
        tile=args.tile,
        overlap=args.overlap,
        batch_size=args.batch_size,
        overwrite=True,
        progress=False,
        precision=args.precision,
    )
    full = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    grid = TileGrid(args.size, args.size, args.tile, args.overlap)
    with rasterio.open(scene) as src:
        tiles = [src.read(window=w, out_dtype='float32')[None] for _, _, w in grid]
    alone = model_only(predictor, tiles, args.batch_size, precision=result.precision)
    return {
        'size': args.size,
        'tiles': result.stats.tiles,
        'full_s': full,
        'model_s': alone,
        'peak_rss_mb': rss,
    }


def backend(args: argparse.Namespace) -> dict[str, float]:
    """One --backends row: load the model file, predict the 1x scene, keep probabilities."""
    torch.set_num_threads(args.threads)
    tmp = Path(args.workdir)
    _, name, precision = BACKENDS[args.backend]
    start = time.perf_counter()
    if name.endswith('.ckpt'):
        model = load_predictor(tmp / name)
    else:
        model = load_exported(tmp / name, expect='task')
    load = time.perf_counter() - start
    model(torch.zeros(1, 1, 3, args.tile, args.tile))  # warm-up
    start = time.perf_counter()
    result = predict_scene(
        model,
        [tmp / 'scene.tif'],
        tmp / f'probabilities_{args.backend}.tif',
        tile=args.tile,
        overlap=args.overlap,
        batch_size=args.batch_size,
        probabilities=True,
        overwrite=True,
        progress=False,
        precision=precision,
    )
    seconds = time.perf_counter() - start
    return {'load_s': load, 'tiles_per_s': result.stats.tiles / seconds}


def compare_backends(args: argparse.Namespace) -> None:
    """The --backends table: each row in its own process, the same scene and model."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        make_checkpoint(work / 'model.ckpt', args.model, args.backbone)
        make_scene(work / 'scene.tif', args.base)
        for suffix in ('onnx', 'pt2'):
            export_model(work / 'model.ckpt', work / f'model.{suffix}', tile=args.tile)
        rows = []
        for k, (name, _, precision) in enumerate(BACKENDS):
            if precision == 'bf16' and not native_bf16():
                continue  # emulated bf16 is slower than fp32: not a choice anyone makes
            cmd = [*_child(args, tmp), '--backend', str(k)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            row = json.loads(out.strip().splitlines()[-1])
            with rasterio.open(work / f'probabilities_{k}.tif') as src:
                row['p'] = src.read()
            rows.append((name, row))
    base = rows[0][1]
    print(
        f'\n{args.model}/{args.backbone}, {args.base}^2 px scene, tile {args.tile}, '
        f'overlap {args.overlap}, batch {args.batch_size}, {args.threads} threads, CPU\n'
    )
    print(
        '| backend | load s | tiles/s | vs eager fp32 | max abs diff | classes equal |'
    )
    print('|---|---|---|---|---|---|')
    for name, r in rows:
        diff = float(np.abs(r['p'] - base['p']).max())
        same = float((r['p'].argmax(0) == base['p'].argmax(0)).mean())
        print(
            f'| {name} | {r["load_s"]:.2f} | {r["tiles_per_s"]:.2f} | '
            f'{r["tiles_per_s"] / base["tiles_per_s"]:.2f}x | {diff:.1e} | '
            f'{same:.2%} |'
        )


def _child(args: argparse.Namespace, workdir: str) -> list[str]:
    """This script, run in a fresh process with the same options."""
    return [
        sys.executable,
        __file__,
        '--workdir',
        workdir,
        '--tile',
        str(args.tile),
        '--overlap',
        str(args.overlap),
        '--batch-size',
        str(args.batch_size),
        '--threads',
        str(args.threads),
        '--precision',
        args.precision,
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument('--model', default='unet')
    parser.add_argument('--backbone', default='resnet18')
    parser.add_argument('--tile', type=int, default=256)
    parser.add_argument('--overlap', type=int, default=32)
    parser.add_argument('--batch-size', type=int, default=4)
    parser.add_argument('--base', type=int, default=512, help='side of the 1x scene')
    parser.add_argument('--threads', type=int, default=torch.get_num_threads())
    parser.add_argument('--precision', choices=('fp32', 'bf16', 'auto'), default='fp32')
    parser.add_argument(
        '--backends', action='store_true', help='compare eager, bf16, ONNX and .pt2'
    )
    parser.add_argument('--size', type=int, help=argparse.SUPPRESS)
    parser.add_argument('--backend', type=int, help=argparse.SUPPRESS)
    parser.add_argument('--workdir', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.backend is not None:
        print(json.dumps(backend(args)))
        return
    if args.size:
        print(json.dumps(one(args)))
        return
    if args.backends:
        compare_backends(args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        make_checkpoint(Path(tmp) / 'model.ckpt', args.model, args.backbone)
        rows = []
        for factor in (1, 4, 16):  # scene area
            size = args.base * int(factor**0.5)
            cmd = [*_child(args, tmp), '--size', str(size)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            rows.append((factor, json.loads(out.strip().splitlines()[-1])))
    print(
        f'\n{args.model}/{args.backbone}, tile {args.tile}, overlap {args.overlap}, '
        f'batch {args.batch_size}, {args.threads} threads, CPU, {args.precision}\n'
    )
    print(
        '| scene | px | tiles | pipeline tiles/s | model-only tiles/s | ratio | peak RSS MB |'
    )
    print('|---|---|---|---|---|---|---|')
    for factor, r in rows:
        full, alone = r['tiles'] / r['full_s'], r['tiles'] / r['model_s']
        print(
            f'| {factor}x | {r["size"]}^2 | {r["tiles"]} | {full:.2f} | {alone:.2f} | '
            f'{full / alone:.2f} | {r["peak_rss_mb"]:.0f} |'
        )


if __name__ == '__main__':
    main()
