#!/usr/bin/env python3
# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""GFM on one GPU: pretraining, fine-tuning and inference throughput, MFU, peak memory.

Runs where only PyTorch and timm are installed (GPU images rarely carry TorchGeo's geo
stack): the method's modules are loaded from ``torchgeo_gfm/models/pretraining.py`` by path,
which imports nothing but torch and timm. Variants, same weights and batch:

* ``bf16``: this package's step as it ships (GFMPretrainingModel, timm's explicit softmax
  window attention, fused AdamW, clipping 5.0) under bf16 autocast, eager;
  ``+ fused attn``: with timm's experimental ``fused_attn`` (one
  ``scaled_dot_product_attention`` call, relative-position bias and shift mask folded into
  its additive mask; equal in fp32, tests/models/test_window_attention.py);
  ``+ ckpt``: with activation checkpointing of the student; ``compiled``: the whole forward
  ``torch.compile``d as ``ContinualPretraining(compile=True)`` does, with either attention
  (compile time printed apart).
* ``authors (fp16 O1 analog)``: the authors' step as their code runs it on a GPU: fp16
  autocast with a GradScaler (apex O1's analog), explicit softmax attention, for-loop AdamW.

MFU uses the FLOPs of one step counted by :class:`torch.utils.flop_counter.FlopCounterMode`
(matmuls and convolutions, forward and backward) over ``--peak-tflops`` (dense bf16 of the
GPU; H100/H200 SXM: 989).

``--profile`` ends with the kernels of the fastest variant, ranked by device time
(``torch.profiler``; a Chrome trace goes to ``$OUT/gfm_step_trace.json`` when ``OUT`` is set):
what to attack next for MFU. ``--compile-mode`` passes a mode to ``torch.compile``
(e.g. ``max-autotune-no-cudagraphs``). ``--device cpu --tiny`` runs every code path in
seconds on a CPU with a small Swin, to check the script before a GPU session spends its
minutes (tests/test_gpu_benchmark.py does).

    python benchmarks/gpu_throughput.py --batch 128
    python benchmarks/gpu_throughput.py --batch 128 --compile-only --profile
"""

import argparse
import importlib.util
import os
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import timm
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

SPEC = importlib.util.spec_from_file_location(
    'gfm_pretraining',
    Path(__file__).parents[1] / 'torchgeo_gfm' / 'models' / 'pretraining.py',
)
assert SPEC is not None
assert SPEC.loader is not None
pretraining: Any = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(pretraining)

SWIN_B: dict[str, Any] = {
    'embed_dim': 128,
    'depths': (2, 2, 18, 2),
    'num_heads': (4, 8, 16, 32),
}
#: ``--tiny``: every code path in seconds on a CPU (not a measurement)
SWIN_TINY: dict[str, Any] = {
    'embed_dim': 16,
    'depths': (1, 1, 1, 1),
    'num_heads': (1, 1, 1, 1),
}
#: set by main(): the device, the Swin widths, torch.compile's mode
DEVICE, ARCH, COMPILE_MODE = 'cuda', SWIN_B, None


def build(fused: bool, compile: bool = False, ckpt: bool = False) -> Any:
    torch.manual_seed(0)
    name = 'swin_base_patch4_window7_224'
    student: Any = timm.create_model(
        name, num_classes=0, img_size=192, window_size=6, drop_path_rate=0.0, **ARCH
    )
    teacher = timm.create_model(name, num_classes=0, **ARCH)
    model = pretraining.GFMPretrainingModel(student, teacher, 3, 224).to(DEVICE).train()
    for module in model.modules():
        if hasattr(module, 'fused_attn'):
            module.fused_attn = fused
    if ckpt:
        student.set_grad_checkpointing(True)
    if compile:  # as GFM(compile=True): the whole forward, static shapes
        model.compile(dynamic=False, mode=COMPILE_MODE)
    return model


def synchronize() -> None:
    if DEVICE == 'cuda':
        torch.cuda.synchronize()


def loss_fn(model: Any, images: Tensor, mask: Tensor, authors: bool) -> Tensor:
    if not authors:
        rec, feature, target = model(images, mask)
    else:  # their teacher forward runs with grad mode on (frozen, so nothing recorded)
        feature, rec = model.forward_student(images, mask)
        small = F.interpolate(images, (224, 224), mode='bilinear', align_corners=True)
        target = model.teacher.forward_features(small).mean(dim=(1, 2))
        feature = model.projector(feature)
    return pretraining.mim_loss(images, rec, mask) + pretraining.distill_loss(
        feature, target
    )


class Run:
    def __init__(
        self, name: str, model: Any, dtype: torch.dtype, authors: bool = False
    ) -> None:
        self.name, self.model, self.dtype, self.authors = name, model, dtype, authors
        params = [p for p in model.parameters() if p.requires_grad]
        if authors:
            self.optimizer = torch.optim.AdamW(params, lr=1e-4, foreach=False)
        else:
            self.optimizer = torch.optim.AdamW(params, lr=1e-4, fused=True)
        fp16 = dtype == torch.float16
        self.scaler = torch.amp.GradScaler(DEVICE) if fp16 else None
        self.times: list[float] = []
        self.memory = 0.0

    def step(self, images: Tensor, mask: Tensor) -> None:
        with torch.autocast(DEVICE, dtype=self.dtype):
            loss = loss_fn(self.model, images, mask, self.authors)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            loss.backward()
        nn.utils.clip_grad_norm_(self.model.parameters(), 5.0)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)


def timed(fn: Callable[[], None], warmup: int, steps: int) -> list[float]:
    """Seconds of each of *steps* steps after *warmup*; the first warm-up's is printed."""
    for i in range(warmup):
        start = time.perf_counter()
        fn()
        synchronize()
        if i == 0:
            print(
                f'  first step (compiles, if compiled): {time.perf_counter() - start:.1f} s'
            )
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        synchronize()
        times.append(time.perf_counter() - start)
    return times


def step_flops(run: Run, images: Tensor, mask: Tensor) -> int:
    with FlopCounterMode(display=False) as counter:
        run.step(images, mask)
    return int(counter.get_total_flops())


def table(rows: list[tuple[str, float, float, float, float]], peak: float) -> None:
    print(
        '| variant | img/s | ms/step | vs authors | TFLOP/step | MFU | peak mem GB |\n'
        '|---|---:|---:|---:|---:|---:|---:|'
    )
    authors = next((r[1] for r in rows if r[0].startswith('authors')), rows[0][1])
    for name, ips, ms, flops, mem in rows:
        mfu = flops / (ms / 1000) / (peak * 1e12)
        print(
            f'| {name} | {ips:.0f} | {ms:.1f} | {ips / authors:.2f}x | '
            f'{flops / 1e12:.2f} | {mfu:.0%} | {mem:.1f} |'
        )


BF16 = torch.bfloat16
#: eager rows, then compiled rows (the last COMPILED); the first is the ratios' baseline
CONFIGS: list[tuple[str, dict[str, bool], torch.dtype, bool]] = [
    ('authors (fp16 O1 analog)', {'fused': False}, torch.float16, True),
    ('bf16', {'fused': False}, BF16, False),
    ('bf16 + fused attn', {'fused': True}, BF16, False),
    ('bf16 + fused attn + ckpt', {'fused': True, 'ckpt': True}, BF16, False),
    ('bf16 compiled', {'fused': False, 'compile': True}, BF16, False),
    ('bf16 compiled + fused attn', {'fused': True, 'compile': True}, BF16, False),
]
COMPILED = 2


def batch(size: int) -> tuple[Tensor, Tensor]:
    """Images and SimMIM mask of the paper's recipe (192 px, 32 px mask patches, 60%)."""
    images = torch.randn(size, 3, 192, 192, device=DEVICE)
    return images, pretraining.simmim_mask(size, (6, 6), 0.6, 8, DEVICE)


def pretraining_row(args: argparse.Namespace, config: Any, flops: int = 0) -> Any:
    """Time one variant; FLOPs are counted in eager mode (compiled: pass the eager count)."""
    name, kwargs, dtype, authors = config
    images, mask = batch(args.batch)
    run = Run(name, build(**kwargs), dtype, authors)
    if DEVICE == 'cuda':
        torch.cuda.reset_peak_memory_stats()
    times = timed(partial(run.step, images, mask), args.warmup, args.steps)
    mem = torch.cuda.max_memory_allocated() / 2**30 if DEVICE == 'cuda' else 0.0
    flops = flops or step_flops(run, images, mask)
    t = statistics.median(times)
    print(f'{name}: {args.batch / t:.0f} img/s', flush=True)
    del run  # free its memory before the next variant
    if DEVICE == 'cuda':
        torch.cuda.empty_cache()
    return (name, args.batch / t, 1000 * t, flops, mem)


def profile(args: argparse.Namespace, config: Any, rows: int = 25) -> None:
    """Print the kernels of a few steps of one variant, ranked by device time."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as profiler

    name, kwargs, dtype, authors = config
    images, mask = batch(args.batch)
    run = Run(name, build(**kwargs), dtype, authors)
    timed(partial(run.step, images, mask), args.warmup, 0)
    activities = [ProfilerActivity.CPU]
    if DEVICE == 'cuda':
        activities.append(ProfilerActivity.CUDA)
    with profiler(activities=activities) as prof:
        timed(partial(run.step, images, mask), 0, 3)
    sort = 'cuda_time_total' if DEVICE == 'cuda' else 'cpu_time_total'
    print(f'\nprofile of 3 steps, {name} (top {rows} by {sort}):\n', flush=True)
    print(
        prof.key_averages().table(
            sort_by=sort, row_limit=rows, max_name_column_width=70
        )
    )
    if os.environ.get('OUT'):
        prof.export_chrome_trace(os.path.join(os.environ['OUT'], 'gfm_step_trace.json'))


def finetune_and_inference(args: argparse.Namespace) -> None:
    # UC Merced recipe: Swin-B at 256 px, window 8, 21 classes
    model = timm.create_model(
        'swin_base_patch4_window7_224',
        img_size=256,
        window_size=8,
        num_classes=21,
        drop_path_rate=0.1,
        **ARCH,
    ).to(DEVICE)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    images = torch.randn(args.batch, 3, 256, 256, device=DEVICE)
    labels = torch.randint(0, 21, (args.batch,), device=DEVICE)

    def train() -> None:
        with torch.autocast(DEVICE, dtype=torch.bfloat16):
            loss = F.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def infer() -> None:
        with torch.no_grad(), torch.autocast(DEVICE, dtype=torch.bfloat16):
            model(images)

    print('\n| job (Swin-B 256 px, bf16) | img/s |\n|---|---:|')
    for name, fn in (('fine-tuning step', train), ('inference', infer)):
        model.train(name != 'inference')
        t = statistics.median(timed(fn, args.warmup, args.steps))
        print(f'| {name} | {args.batch / t:.0f} |')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--batch', type=int, default=128)
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--steps', type=int, default=10)
    parser.add_argument('--peak-tflops', type=float, default=989.0)
    parser.add_argument('--no-compile', action='store_true')
    parser.add_argument('--compile-only', action='store_true')
    parser.add_argument('--compile-mode', default=None, help='torch.compile mode')
    parser.add_argument('--profile', action='store_true', help='kernels, at the end')
    parser.add_argument('--device', default='cuda', help='cpu: only with --tiny')
    parser.add_argument('--tiny', action='store_true', help='small Swin: smoke test')
    args = parser.parse_args()
    global DEVICE, ARCH, COMPILE_MODE
    DEVICE, COMPILE_MODE = args.device, args.compile_mode
    ARCH = SWIN_TINY if args.tiny else SWIN_B
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    name = torch.cuda.get_device_name() if DEVICE == 'cuda' else DEVICE
    print(f'{name}, torch {torch.__version__}, timm {timm.__version__}')
    eager, compiled = CONFIGS[:-COMPILED], CONFIGS[-COMPILED:]
    if args.compile_only:
        rows = [pretraining_row(args, CONFIGS[1])]
        rows += [pretraining_row(args, c, flops=rows[0][3]) for c in compiled]
        table(rows, args.peak_tflops)  # 'vs authors': vs bf16 eager here
        if args.profile:
            profile(args, fastest(rows))
        return
    rows = [pretraining_row(args, config) for config in eager]
    title = (
        f'\nGFM pretraining step, paper architecture (Swin-B 192 px + Swin-B teacher '
        f'224 px), batch {args.batch}, median of {args.steps}; MFU over '
        f'{args.peak_tflops:.0f} TFLOP/s\n'
    )
    print(title)
    table(rows, args.peak_tflops)
    finetune_and_inference(args)
    if not args.no_compile:  # last: compiling takes a while
        rows += [pretraining_row(args, c, flops=rows[1][3]) for c in compiled]
        print(title)
        table(rows, args.peak_tflops)
    if args.profile:
        profile(args, fastest(rows[1:]))


def fastest(rows: list[tuple[str, float, float, float, float]]) -> Any:
    """The config of the row with the most images per second."""
    name = max(rows, key=lambda row: row[1])[0]
    return next(config for config in CONFIGS if config[0] == name)


if __name__ == '__main__':
    main()
