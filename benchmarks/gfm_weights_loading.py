#!/usr/bin/env python3

# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Seconds to get GFM student weights: the authors' ``gfm.pth`` vs the converted cache.

* baseline: ``load_upstream_checkpoint`` + ``student_state_dict`` (unpickle the whole training
  checkpoint with ``weights_only=True``, keep the student), what every load would cost
  without the cache;
* cached: ``student_weights`` after its first call (safetensors of the student only);
* model: ``gfm_swin_b(path)`` end to end from the cache (build Swin-B + load).

Usage: ``python benchmarks/gfm_weights_loading.py [--checkpoint gfm.pth] [--repeat 3]``.
Without ``--checkpoint`` a fake ``gfm.pth`` with the real shapes (student, teacher, decoder,
projector, yacs config; no optimizer state) is written to a temporary folder.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from torchgeo_gfm.models import gfm_swin_b, load_upstream_checkpoint, student_state_dict
from torchgeo_gfm.models.download import student_weights


def _time(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--checkpoint', type=Path, help="the authors' gfm.pth")
    parser.add_argument('--repeat', type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ['TORCH_HOME'] = tmp  # private cache of converted weights
        path = args.checkpoint
        if path is None:
            sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
            from tests.data.gfm.data import write_upstream_checkpoint

            path = Path(tmp) / 'gfm.pth'
            write_upstream_checkpoint(path)
        size = path.stat().st_size / 2**20
        base = _time(
            lambda: student_state_dict(load_upstream_checkpoint(path)), args.repeat
        )
        student_weights(path)  # fills the cache
        cached = _time(lambda: student_weights(path), args.repeat)
        model = _time(lambda: gfm_swin_b(path), args.repeat)
    print(f'checkpoint: {path} ({size:.0f} MiB), median of {args.repeat}, 1 thread')
    print(f'{"path":<40} {"seconds":>8} {"vs baseline":>12}')
    print(f'{"baseline: unpickle gfm.pth, keep student":<40} {base:>8.3f} {1:>11.1f}x')
    print(
        f'{"cached: converted student (safetensors)":<40} {cached:>8.3f} {base / cached:>11.1f}x'
    )
    print(f'{"gfm_swin_b(path): build Swin-B + load":<40} {model:>8.3f} {"-":>12}')


if __name__ == '__main__':
    main()
