#!/usr/bin/env python3
# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Throughput of one full GFM pretraining step, with baselines measured in the same run.

A step is what training does per batch: SimMIM masks, student forward on the masked image,
teacher forward on the resized unmasked image, losses, backward, gradient clipping (5.0) and
AdamW. Variants, all built from the same weights; ratios are against the first:

* ``authors, documented``: the baseline, the same step as the authors' ``main_teacher.py``
  computes it when run as their README says
  (``--pretrained output/simmim_finetune/swin_base_..._22k.pth``): Microsoft Swin's explicit
  softmax attention (timm's unfused path, numerically the same), PyTorch's default
  (non-fused) AdamW, and a frozen teacher, because their ``load_pretrained`` freezes it when
  the checkpoint path contains 'finetune', as that one does. This is an emulation built from
  timm modules, not the authors' code; check with their code on the same machine.
* ``authors, other path``: their step when the teacher checkpoint lies elsewhere: its
  parameters then require grad and its forward, not under ``no_grad``, is recorded by
  autograd (only its output is detached).
* this package's step (fused AdamW, teacher under ``no_grad``) in each ``--precision``
  (fp32 always) and each ``--attention``: ``timm`` is timm's explicit softmax, the
  package's default; ``fused`` is timm's experimental ``fused_attn`` (one
  ``scaled_dot_product_attention`` call, relative-position bias and shift mask folded into
  its additive mask; equal within fp32 rounding, tests/models/test_window_attention.py).
* ``--compile``: the same rows with ``ContinualPretraining(compile=True)``; their first
  step, which compiles, is timed apart and printed as the compile time.
* ``--sensor s2``: the fp32 eager step of a multispectral student (13 bands for ``s2``) on
  uint16-range batches, normalised by the task, with the RGB teacher on their true colour.

``--breakdown`` profiles one fp32 step of this package and prints the share of its time spent
in matrix multiplications, which both implementations perform identically: the authors' step
time divided by that time bounds what any fp32 implementation with the same matmuls can gain.

On a shared or small CPU, use ``--threads 1``: OpenMP threads competing with other
processes make multi-threaded timings swing by 2-3x. Steps of the variants are interleaved
(A, B, C, A, B, C, ...) and the median is reported, so that load from other processes
affects all variants alike. Memory: peak allocated on CUDA; on CPU, the bytes autograd saves
for backward during the step (activations), which is where the variants differ.

Examples::

    python benchmarks/pretrain_throughput.py                      # small Swin, CPU
    python benchmarks/pretrain_throughput.py --arch base --batch 128 --device cuda \\
        --precision bf16 --compile
    python benchmarks/pretrain_throughput.py --arch base --batch 2 --sensor s2  # 13 vs 3
    python benchmarks/pretrain_throughput.py --arch base --batch 4 --precision bf16 \\
        --attention timm fused --compile --warmup 1 --steps 3  # CPU with native bf16
"""

import argparse
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

import torchgeo_gfm.models  # noqa: F401  (registers gfm_swin_base)
from torchgeo_gfm.precision import native_bf16
from torchgeo_gfm.tasks import ContinualPretraining

ARCHS: dict[str, dict[str, Any]] = {
    # Swin-B student and teacher as in the paper
    'base': {'embed_dim': 128, 'depths': (2, 2, 18, 2), 'num_heads': (4, 8, 16, 32)},
    # a Swin-T-sized pair, for CPUs
    'tiny': {'embed_dim': 96, 'depths': (2, 2, 6, 2), 'num_heads': (3, 6, 12, 24)},
    # a small pair for quick CPU runs
    'small-cpu': {'embed_dim': 48, 'depths': (2, 2, 6, 2), 'num_heads': (2, 4, 8, 16)},
}


def build(
    arch: str,
    device: str,
    fused: bool,
    seed: int = 0,
    compile: bool = False,
    sensor: str | None = None,
) -> ContinualPretraining:
    torch.manual_seed(seed)
    kwargs = ARCHS[arch]
    task = ContinualPretraining(
        model_kwargs={**kwargs, 'window_size': 6},
        teacher='swin_base_patch4_window7_224',
        teacher_weights=None,  # random: speed does not depend on the values
        teacher_kwargs=kwargs,
        compile=compile,
        sensor=sensor,
    ).to(device)
    for module in task.modules():  # timm's switch between SDPA and explicit softmax
        if hasattr(module, 'fused_attn'):
            module.fused_attn = fused
    return task.train()


def authors_like_loss(
    task: ContinualPretraining, images: Tensor, mask: Tensor
) -> Tensor:
    """The loss as the authors' code computes it (teacher forward with grad mode on)."""
    model = task.model
    feature, rec = model.forward_student(images, mask)
    small = F.interpolate(images, (224, 224), mode='bilinear', align_corners=True)
    target = model.teacher.forward_features(small).mean(dim=(1, 2))  # grad mode on
    pixels = mask.repeat_interleave(4, 1).repeat_interleave(4, 2).unsqueeze(1)
    loss = (F.l1_loss(images, rec, reduction='none') * pixels).sum()
    loss = loss / (pixels.sum() + 1e-5) / images.shape[1]
    cos = F.cosine_similarity(model.projector(feature), target.detach(), dim=1)
    return loss - cos.mean()


@contextmanager
def saved_bytes(counter: list[int]) -> Iterator[None]:
    """Count the bytes autograd saves for backward (distinct storages)."""
    seen: set[int] = set()

    def pack(t: Tensor) -> Tensor:
        ptr = t.untyped_storage().data_ptr()
        if ptr not in seen:
            seen.add(ptr)
            counter[0] += t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        yield


class Variant:
    def __init__(
        self,
        name: str,
        task: ContinualPretraining,
        loss: Callable[[ContinualPretraining, Tensor, Tensor], Tensor],
        autocast: Callable[[], AbstractContextManager[Any]],
    ) -> None:
        self.name, self.task, self.loss, self.autocast = name, task, loss, autocast
        #: this variant's own batch (the sensor's stored values); None = the RGB one
        self.images: Tensor | None = None
        self.params = [p for p in task.parameters() if p.requires_grad]
        # the task's own optimizer (fused AdamW); the authors' is the plain one
        self.optimizer = task.build_optimizer(
            fused=False if 'authors' in name else None
        )
        self.times: list[float] = []
        #: seconds of the first step (with --compile: compiling)
        self.first = 0.0
        self.memory = 0

    def step(self, images: Tensor, measure: bool) -> None:
        device = images.device
        counter = [0]
        if device.type == 'cuda':
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        mask = self.task.draw_mask(images)
        hooks = saved_bytes(counter) if device.type == 'cpu' else nullcontext()
        with self.autocast(), hooks:
            loss = self.loss(self.task, images, mask)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 5.0)
        self.optimizer.step()
        if device.type == 'cuda':
            torch.cuda.synchronize()
        if not self.first:
            self.first = time.perf_counter() - start
        if measure:
            self.times.append(time.perf_counter() - start)
            self.memory = (
                torch.cuda.max_memory_allocated()
                if device.type == 'cuda'
                else counter[0]
            )


def variants(args: argparse.Namespace) -> list[Variant]:
    device = torch.device(args.device)

    def autocast(
        dtype: torch.dtype | None,
    ) -> Callable[[], AbstractContextManager[Any]]:
        if dtype is None:
            return nullcontext
        return lambda: torch.autocast(device.type, dtype=dtype)

    # their apex O1 is CUDA-only: fp16 autocast there (its analog), fp32 on a CPU
    authors_cast = autocast(torch.float16 if device.type == 'cuda' else None)

    def ours(task: ContinualPretraining, images: Tensor, mask: Tensor) -> Tensor:
        return task.compute_loss(images, mask)['loss']

    out = [
        Variant(
            'authors, documented',
            build(args.arch, args.device, False),
            authors_like_loss,
            authors_cast,
        ),
        Variant(
            'authors, other path',
            build(args.arch, args.device, False),
            authors_like_loss,
            authors_cast,
        ),
    ]
    out[1].task.model.teacher.requires_grad_(True)
    dtypes = {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}
    precisions = ['fp32', *(p for p in args.precision if p != 'fp32')]
    modes = [('eager', False)] + ([('compiled', True)] if args.compile else [])
    for mode, compile in modes:
        for precision in precisions if not compile else args.precision:
            for attention in args.attention:
                fused = attention == 'fused'
                task = build(args.arch, args.device, fused, compile=compile)
                name = f'{precision} {mode}' + (', fused attn' if fused else '')
                cast = autocast(dtypes[precision])
                out.append(Variant(name, task, ours, cast))
    if args.sensor:
        task = build(args.arch, args.device, False, sensor=args.sensor)
        sensor = task.sensor
        assert sensor is not None
        run = Variant(
            f'fp32, {sensor.name} ({sensor.num_bands} b)', task, ours, autocast(None)
        )
        # uint16-range stored values around the sensor's mean
        mean = torch.tensor(sensor.mean, device=device).view(1, -1, 1, 1)
        shape = (args.batch, sensor.num_bands, args.size, args.size)
        run.images = (mean * 2 * torch.rand(shape, device=device)).round()
        out.append(run)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--arch', choices=sorted(ARCHS), default='small-cpu')
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--size', type=int, default=192)
    parser.add_argument(
        '--precision',
        nargs='+',
        default=None,
        choices=['fp32', 'bf16', 'fp16'],
        help='default: fp32, plus bf16 where the device computes it natively '
        '(fp32 eager is always timed; --compile compiles these)',
    )
    parser.add_argument(
        '--attention',
        nargs='+',
        default=['timm', 'fused'],
        choices=['timm', 'fused'],
        help="timm: explicit softmax (the package's default); fused: timm's fused_attn",
    )
    parser.add_argument(
        '--compile', action='store_true', help='add ContinualPretraining(compile=True)'
    )
    parser.add_argument(
        '--sensor',
        default=None,
        help='add a multispectral step of this sensor (s2: 13 bands) to the table',
    )
    parser.add_argument(
        '--device', default='cuda' if torch.cuda.is_available() else 'cpu'
    )
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--steps', type=int, default=5)
    parser.add_argument(
        '--threads', type=int, default=0, help='CPU threads (0: torch default)'
    )
    parser.add_argument(
        '--breakdown',
        action='store_true',
        help='profile one step: share of matrix multiplications (CPU only)',
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.compile and args.warmup < 1:
        parser.error('--compile needs --warmup >= 1 (the first step compiles)')
    if args.precision is None:
        native = native_bf16(args.device)
        args.precision = ['fp32', 'bf16'] if native else ['fp32']
        if not native:
            print(
                f'bf16 is not native on {args.device}: timing fp32 only (--precision bf16)'
            )

    runs = variants(args)
    images = torch.randn(args.batch, 3, args.size, args.size, device=args.device)
    for i in range(args.warmup + args.steps):
        for run in runs:
            batch = images if run.images is None else run.images
            run.step(batch, measure=i >= args.warmup)
    report(args, runs)
    if args.breakdown:
        ours = next(run for run in runs if run.name.startswith('fp32 eager'))
        matmul = matmul_seconds(ours, images)
        authors = statistics.median(runs[0].times)
        print(
            f'\nmatrix multiplications: {1000 * matmul:.0f} ms of the fp32 step '
            f'({matmul / statistics.median(ours.times):.0%}); the same matmuls bound any '
            f"fp32 speed-up over the documented authors' step at {authors / matmul:.2f}x"
        )


def report(args: argparse.Namespace, runs: list[Variant]) -> None:
    """Print the table (ratios vs the authors' documented step) and compile times."""
    base = statistics.median(runs[0].times)
    memory = 'peak alloc MB' if args.device.startswith('cuda') else 'saved activ. MB'
    where = torch.cuda.get_device_name() if args.device.startswith('cuda') else 'CPU'
    print(
        f'\nGFM pretraining step: arch={args.arch} batch={args.batch} size={args.size} '
        f'device={where} threads={torch.get_num_threads()} '
        f'median of {args.steps} interleaved steps\n'
    )
    print(
        f'| {"variant":<28} | {"img/s":>8} | {"ms/step":>9} | {"vs authors":>10} | {memory:>15} |'
    )
    print(f'|{"-" * 30}|{"-" * 10}|{"-" * 11}|{"-" * 12}|{"-" * 17}|')
    for run in runs:
        t = statistics.median(run.times)
        print(
            f'| {run.name:<28} | {args.batch / t:>8.2f} | {1000 * t:>9.1f} | '
            f'{base / t:>9.2f}x | {run.memory / 2**20:>15.1f} |'
        )
    for run in runs:
        if run.task.hparams['compile']:
            seconds = run.first - statistics.median(run.times)
            print(f'compile time, {run.name}: {seconds:.0f} s (first step - median)')


#: profiler names of the matrix multiplications (the same work in every implementation)
MATMULS = {'aten::mm', 'aten::addmm', 'aten::bmm', 'aten::baddbmm'}
MATMULS |= {'aten::mkldnn_convolution', 'aten::convolution_backward'}


def matmul_seconds(run: Variant, images: Tensor) -> float:
    """CPU seconds one step of *run* spends in matrix multiplications (self time)."""
    if images.device.type != 'cpu':
        raise SystemExit('--breakdown profiles CPU steps only')
    with torch.profiler.profile(
        activities=[torch.profiler.ProfilerActivity.CPU]
    ) as prof:
        run.step(images, measure=False)
    events = prof.key_averages()
    return sum(e.self_cpu_time_total for e in events if e.key in MATMULS) / 1e6


if __name__ == '__main__':
    main()
