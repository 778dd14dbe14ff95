# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""``torchgeo-gfm arp``: the paper's table and ARP next to ours, and the radar chart.

.. versionadded:: 0.2
   The command line of :mod:`torchgeo_gfm.arp` moved here; ``add_arguments``, ``run``
   and ``main`` there are deprecated aliases of these.
"""

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from . import report_error
from ._args import name_path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``torchgeo-gfm arp``.

    Args:
        parser: the sub-command's parser.
    """
    from ..arp import RUNS  # the standard library only: matplotlib loads with a chart

    names = ', '.join(RUNS)
    parser.add_argument(
        '--logs',
        type=Path,
        help='folder of finished GFM runs, one sub-folder per config (logs/<config>/...)',
    )
    parser.add_argument(
        '--run',
        action='append',
        default=[],
        type=name_path,
        metavar='NAME=PATH',
        help=f'a finished GFM run: NAME is one of {names}; PATH its metrics.csv or log folder',
    )
    parser.add_argument(
        '--baseline-logs', type=Path, help='folder of finished IN-22k baseline runs'
    )
    parser.add_argument(
        '--baseline',
        action='append',
        default=[],
        type=name_path,
        metavar='NAME=PATH',
        help="a finished IN-22k baseline run (default: the paper's IN-22k numbers)",
    )
    parser.add_argument(
        '--plot', type=Path, help='save the radar chart here (.png, .pdf, .svg, ...)'
    )


def _runs(logs: Path | None, items: Sequence[tuple[str, Path]]) -> dict[str, Path]:
    """Runs found under *logs*, replaced by those given by name."""
    from ..arp import discover_runs

    names = [name for name, _ in items]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ValueError(f'runs {twice} given more than once: give each run once')
    return {**(discover_runs(logs) if logs else {}), **dict(items)}


def _save_chart(
    path: Path, ours: Mapping[str, float] | None, baseline: Mapping[str, float] | None
) -> None:
    """Save the radar chart of the paper's models, and ours if given."""
    from ..arp import paper_scores, radar_chart, save_figure

    in22k = paper_scores('in22k')
    models: dict[str, Mapping[str, float]] = {
        'IN-22k (paper)': in22k,
        'GFM (paper)': paper_scores('gfm'),
    }
    if ours:
        models['GFM (ours)'] = ours
    save_figure(radar_chart(models, {**in22k, **(baseline or {})}), path)


def _report(args: argparse.Namespace) -> str:
    """Check and read everything, save the chart; return the text to print."""
    from ..arp import check_figure_path, collect, find_metrics_csv, format_table

    runs = _runs(args.logs, args.run)
    baseline_runs = _runs(args.baseline_logs, args.baseline)
    if args.plot:  # before the work, not after it; never one of the logs read
        logs = [*runs.values(), *baseline_runs.values()]
        check_figure_path(args.plot, [find_metrics_csv(Path(p)) for p in logs])
    ours = collect(runs) if runs else None
    baseline = collect(baseline_runs) if baseline_runs else None
    text = format_table(ours, baseline)
    if args.plot:
        _save_chart(args.plot, ours, baseline)
        text += f'\nradar chart: {args.plot}'
    return text


def run(args: argparse.Namespace) -> int:
    """Print the table (and draw the chart) for the given runs.

    Args:
        args: parsed arguments.

    Returns:
        The exit status: 0, or 2 with one line on stderr for a bad input (as the
        other sub-commands and argparse itself).
    """
    try:
        text = _report(args)
    except (ValueError, KeyError, OSError) as err:
        return report_error('arp', err)
    print(text)
    return 0


def main(argv: Sequence[str] | None = None) -> int:  # pragma: no cover
    """Run ``torchgeo-gfm arp`` (what the deprecated ``python -m torchgeo_gfm.arp`` runs).

    Args:
        argv: the command's arguments, ``sys.argv[1:]`` if None.

    Returns:
        The exit status.
    """
    from . import main as cli_main

    return cli_main(['arp', *(sys.argv[1:] if argv is None else argv)])
