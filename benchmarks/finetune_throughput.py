#!/usr/bin/env python3
# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Fine-tuning step of a segmentation model on the GFM backbone, fp32 vs bf16, one run.

UPerNet (smp) with ``tu-gfm_swin_base`` (window 8) at 256 px, as the segmentation configs:
forward, cross-entropy, backward and AdamW. bf16 is timed where the device computes it natively
(pass ``--precision fp32 bf16`` to time it anyway). Steps are interleaved and the median
reported.

    python benchmarks/finetune_throughput.py --batch 4
"""

import argparse
import statistics
import time
from contextlib import nullcontext
from typing import Any

import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F

import torchgeo_gfm.models  # noqa: F401  (registers gfm_swin_base)
from torchgeo_gfm.precision import native_bf16


def step(model: Any, optimizer: Any, images: Any, masks: Any, dtype: Any) -> float:
    device = images.device.type
    start = time.perf_counter()
    cast = torch.autocast(device, dtype=dtype) if dtype else nullcontext()
    with cast:
        loss = F.cross_entropy(model(images).float(), masks)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    if device == 'cuda':
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--batch', type=int, default=4)
    parser.add_argument('--size', type=int, default=256)
    parser.add_argument('--steps', type=int, default=3)
    parser.add_argument(
        '--device', default='cuda' if torch.cuda.is_available() else 'cpu'
    )
    parser.add_argument(
        '--precision', nargs='+', choices=['fp32', 'bf16'], default=None
    )
    parser.add_argument('--threads', type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    precisions = args.precision or (
        ['fp32', 'bf16'] if native_bf16(args.device) else ['fp32']
    )
    dtypes = {'fp32': None, 'bf16': torch.bfloat16}
    torch.manual_seed(0)
    runs = {}
    for name in precisions:
        model = smp.UPerNet(
            'tu-gfm_swin_base',
            encoder_weights=None,
            classes=6,
            img_size=args.size,
            window_size=8,
        ).to(args.device)
        runs[name] = (model, torch.optim.AdamW(model.parameters(), lr=1e-4), [])
    images = torch.randn(args.batch, 3, args.size, args.size, device=args.device)
    masks = torch.randint(0, 6, (args.batch, args.size, args.size), device=args.device)
    for i in range(args.steps + 1):  # the first step warms up
        for name, (model, optimizer, times) in runs.items():
            t = step(model, optimizer, images, masks, dtypes[name])
            if i:
                times.append(t)
    base = statistics.median(runs[precisions[0]][2])
    print(
        f'\nUPerNet + tu-gfm_swin_base fine-tuning step, {args.size} px, batch '
        f'{args.batch}, {args.device}, median of {args.steps}\n'
    )
    print('| precision | img/s | ms/step | vs fp32 |\n|---|---:|---:|---:|')
    for name, (_, _, times) in runs.items():
        t = statistics.median(times)
        print(f'| {name} | {args.batch / t:.2f} | {1000 * t:.0f} | {base / t:.2f}x |')
    if 'bf16' not in runs:
        print(
            f'\nbf16 is not native on {args.device}: not timed (--precision fp32 bf16)'
        )


if __name__ == '__main__':
    main()
