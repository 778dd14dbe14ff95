#!/usr/bin/env python3

# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Seconds to load GFM weights: the authors' ``gfm.pth`` vs a converted backbone file.

* baseline: the authors' ``gfm.pth`` (unpickle the whole training checkpoint with
  ``weights_only=True``, keep the student in timm names), what every load from the Hub costs;
* converted: the backbone file ``torchgeo-gfm convert`` writes (safetensors of the student
  only), what a cache of converted weights would cost instead;
* each also end to end: ``gfm_swin_b(path)`` (build Swin-B + load).

The difference between the two is what a conversion cache would save per load.

Usage: ``python benchmarks/gfm_weights_loading.py [--checkpoint gfm.pth] [--repeat 3]``.
Without ``--checkpoint`` a fake ``gfm.pth`` with the real shapes (student, teacher, decoder,
projector, yacs config; no optimizer state, so smaller than the real file) is written to a
temporary folder.
"""

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from torchgeo_gfm.models import (
    gfm_swin_b,
    read_gfm_weights,
    save_backbone,
    student_state_dict,
)


def _time(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _row(name: str, seconds: float, base: float) -> str:
    return f'{name:<44} {seconds:>8.3f} {base / seconds:>11.1f}x'


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--checkpoint', type=Path, help="the authors' gfm.pth")
    parser.add_argument('--repeat', type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        path = args.checkpoint
        if path is None:
            sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
            from tests.data.gfm.data import write_upstream_checkpoint

            path = Path(tmp) / 'gfm.pth'
            write_upstream_checkpoint(path)
        converted = Path(tmp) / 'gfm.safetensors'
        save_backbone(student_state_dict(read_gfm_weights(path)), converted)
        size = path.stat().st_size / 2**20
        rows = {
            "weights: authors' gfm.pth": lambda: student_state_dict(
                read_gfm_weights(path)
            ),
            'weights: converted backbone': lambda: read_gfm_weights(converted),
            "gfm_swin_b(authors' gfm.pth)": lambda: gfm_swin_b(path),
            'gfm_swin_b(converted backbone)': lambda: gfm_swin_b(converted),
        }
        times = {name: _time(fn, args.repeat) for name, fn in rows.items()}
    print(f'checkpoint: {path} ({size:.0f} MiB), median of {args.repeat}, 1 thread')
    print(f'{"path":<44} {"seconds":>8} {"vs baseline":>12}')
    names = list(times)
    for name in names[:2]:
        print(_row(name, times[name], times[names[0]]))
    for name in names[2:]:
        print(_row(name, times[name], times[names[2]]))


if __name__ == '__main__':
    main()
