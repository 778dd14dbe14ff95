#!/usr/bin/env python3

# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Seconds until ``torchgeo-gfm --help`` (and each command's) answers, vs ``import torch``.

Each row is the wall time of a fresh interpreter, as a user waits for it: the console
script's own code (``from torchgeo_gfm.cli import main; main()``) with the arguments
given, median of ``--repeat`` runs. Baselines in the same run:

* ``python -c pass``: the interpreter alone, the floor of any command;
* ``python -c 'import torch'``: what every command paid before the sub-commands imported
  their implementation only in ``run`` (issue 20: 5-7 s on a busy 2-core machine).

Rows: ``torchgeo-gfm --help``, ``config --list`` and ``COMMAND --help`` for every
command of :data:`torchgeo_gfm.cli.COMMANDS`.

Usage: ``python benchmarks/cli_startup.py [--repeat 5]``.
"""

import argparse
import statistics
import subprocess
import sys
import time

from torchgeo_gfm.cli import COMMANDS

# the console script's entry point, run as `torchgeo-gfm ARGS`
SCRIPT = 'from torchgeo_gfm.cli import main; raise SystemExit(main())'


def _time(argv: list[str], repeat: int) -> float:
    """Median wall time of a fresh interpreter running *argv*."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--repeat', type=int, default=5)
    args = parser.parse_args()
    python = sys.executable
    rows = {
        '`python -c pass` (baseline)': [python, '-c', 'pass'],
        "`python -c 'import torch'` (baseline)": [python, '-c', 'import torch'],
        '`torchgeo-gfm --help`': [python, '-c', SCRIPT, '--help'],
        '`torchgeo-gfm config --list`': [python, '-c', SCRIPT, 'config', '--list'],
    }
    for name in COMMANDS:
        rows[f'`torchgeo-gfm {name} --help`'] = [python, '-c', SCRIPT, name, '--help']
    times = {row: _time(argv, args.repeat) for row, argv in rows.items()}
    bare, torch = list(times.values())[:2]
    print(f'median of {args.repeat} runs, wall time of a fresh interpreter')
    print()
    print('| command | seconds | vs `python -c pass` | vs `import torch` |')
    print('| --- | ---: | ---: | ---: |')
    for row, seconds in times.items():
        print(
            f'| {row} | {seconds:.3f} | {seconds / bare:.1f}x | {seconds / torch:.2f}x |'
        )


if __name__ == '__main__':
    main()
