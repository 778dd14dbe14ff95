# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""benchmarks/gpu_throughput.py runs every code path (bar compile) before a GPU session.

GPU time is scarce (minutes per session): a crash there wastes it. With ``--device cpu
--tiny`` the script runs its variants, tables and profile on a small Swin in seconds.
Nothing here is a speed measurement.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[1] / 'benchmarks' / 'gpu_throughput.py'


@pytest.mark.slow
def test_gpu_script_runs_on_cpu(tmp_path: Path) -> None:
    args = [
        '--device',
        'cpu',
        '--tiny',
        '--batch',
        '2',
        '--warmup',
        '1',
        '--steps',
        '1',
    ]
    proc = subprocess.run(
        [sys.executable, SCRIPT, *args, '--no-compile', '--profile'],
        env=os.environ | {'OUT': str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = ['authors (fp16 O1 analog)', 'bf16', 'bf16 + fused attn']
    for row in [*rows, 'bf16 + fused attn + ckpt']:
        assert f'| {row} |' in proc.stdout
    assert '| fine-tuning step |' in proc.stdout
    assert '| inference |' in proc.stdout
    assert 'profile of 3 steps, bf16' in proc.stdout  # the fastest of this package
    assert (tmp_path / 'gfm_step_trace.json').stat().st_size > 0
