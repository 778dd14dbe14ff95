# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Average relative performance (ARP) of downstream runs, the paper's summary number.

Reads the test metrics that ``torchgeo test`` (Lightning's CSV logger) wrote for each
dataset, compares them with the ImageNet-22k Swin-B baseline, formats the paper's table next
to ours and draws the radar chart; ``torchgeo-gfm arp`` (:mod:`torchgeo_gfm.cli.arp`) does
all of it from the command line.

.. versionadded:: 0.1
"""

import csv
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ._deprecated import moved
from .outputs import OutputError, atomic_output, check_output

if TYPE_CHECKING:  # matplotlib loads with the first chart: the scores need none of it
    import matplotlib.figure


@dataclass(frozen=True)
class Entry:
    """One metric of one downstream dataset, with the paper's scores.

    Args:
        dataset: dataset group; entries of the same group are averaged into one ARP term.
        name: unique entry name (the keys of score dicts).
        run: the fine-tuning config (``configs/finetune/<run>.yaml``) whose test
            metrics hold this entry; also its log folder name (``logs/<run>/``).
        metric: metric as the paper names it.
        column: the metric's column in the run's ``metrics.csv``.
        scale: factor from the logged value to the paper's unit (100 for percentages).
        gfm: the paper's GFM score.
        in22k: the paper's ImageNet-22k Swin-B score (the ARP baseline).

    .. versionadded:: 0.1
    """

    dataset: str
    name: str
    run: str
    metric: str
    column: str
    scale: float
    gfm: float
    in22k: float


#: The paper's downstream results (GFM, ICCV 2023), one entry per reported metric.
# fmt: off
PAPER: tuple[Entry, ...] = (
    # dataset, name, run, metric, metrics.csv column, scale, GFM, IN-22k
    Entry('OSCD', 'oscd', 'oscd', 'F1', 'test_OverallF1Score', 100, 59.82, 52.35),
    Entry('DSIFN', 'dsifn', 'dsifn', 'F1', 'test_OverallF1Score', 100, 71.24, 69.62),
    Entry('UC Merced', 'ucmerced', 'ucmerced', 'top-1', 'test_OverallAccuracy', 100, 99.0, 99.0),
    Entry('BigEarthNet', 'bigearthnet_10', 'bigearthnet_10', 'mAP 10%', 'test_mAP', 100, 86.3, 85.7),
    Entry('BigEarthNet', 'bigearthnet_1', 'bigearthnet_1', 'mAP 1%', 'test_mAP', 100, 80.7, 79.5),
    Entry('WHU Aerial', 'whu_building', 'whu_building', 'IoU', 'test_OverallJaccardIndex', 100, 90.7, 90.4),
    Entry('Vaihingen', 'vaihingen', 'vaihingen', 'mIoU', 'test_AverageJaccardIndex', 100, 75.3, 74.7),
    Entry('SpaceNet2', 'spacenet2_psnr', 'spacenet2_sr', 'PSNR', 'test_PSNR', 1, 22.599, 21.665),
    Entry('SpaceNet2', 'spacenet2_ssim', 'spacenet2_sr', 'SSIM', 'test_SSIM', 1, 0.638, 0.612),
)
# fmt: on
#: fine-tuning runs (config names), in table order
RUNS = tuple(dict.fromkeys(e.run for e in PAPER))
_BY_NAME = {e.name: e for e in PAPER}


def relative_performance(score: float, baseline: float, name: str = 'metric') -> float:
    """Relative improvement over the baseline, in percent.

    Args:
        score: the model's score (higher is better).
        baseline: the baseline's score on the same metric.
        name: what is compared, for error messages.

    Returns:
        ``100 * (score - baseline) / baseline``.

    Raises:
        ValueError: if a score is not finite or the baseline is 0.

    .. versionadded:: 0.1
    """
    for role, value in (('score', score), ('baseline score', baseline)):
        if not math.isfinite(value):
            raise ValueError(
                f'{role} of {name} is {value}: expected a finite number; '
                'check the metrics.csv it was read from (did the run diverge?)'
            )
    if baseline == 0:
        raise ValueError(
            f'baseline score of {name} is 0: relative performance divides by it; '
            'check the baseline run (a score of 0 means it failed)'
        )
    return 100 * (score - baseline) / baseline


def dataset_terms(
    scores: Mapping[str, float], baseline: Mapping[str, float]
) -> dict[str, float]:
    """Relative performance per dataset, averaging the metrics of one dataset.

    Args:
        scores: entry name -> score (paper units); entries missing here are skipped.
        baseline: entry name -> baseline score for every entry in *scores*.

    Returns:
        Dataset -> mean relative performance (percent) of its entries.

    Raises:
        ValueError: if a score is not finite, or a baseline is missing, not finite or 0.

    .. versionadded:: 0.1
    """
    groups: dict[str, list[float]] = {}
    for e in PAPER:
        if e.name in scores:
            name = f'{e.dataset} {e.metric} ({e.name!r})'
            if e.name not in baseline:
                raise ValueError(f'no baseline score for {name}: add it to baseline')
            rp = relative_performance(scores[e.name], baseline[e.name], name)
            groups.setdefault(e.dataset, []).append(rp)
    return {d: sum(v) / len(v) for d, v in groups.items()}


def average_relative_performance(
    scores: Mapping[str, float], baseline: Mapping[str, float]
) -> float:
    """The paper's ARP: mean over datasets of the relative performance to the baseline.

    BigEarthNet 10%/1% and SpaceNet2 PSNR/SSIM are each averaged into one dataset term
    first, so the paper's 7 datasets weigh equally.

    Args:
        scores: entry name -> score (paper units).
        baseline: entry name -> baseline score.

    Returns:
        ARP in percent.

    Raises:
        ValueError: if *scores* holds an unknown entry or none, or a score is invalid
            (see :func:`dataset_terms`).

    .. versionadded:: 0.1
    """
    unknown = set(scores) - set(_BY_NAME)
    if unknown:
        raise ValueError(
            f'unknown entries {sorted(unknown)}; known: {sorted(_BY_NAME)}'
        )
    terms = dataset_terms(scores, baseline)
    if not terms:
        raise ValueError('no scores given: nothing to average')
    return sum(terms.values()) / len(terms)


def paper_scores(model: str = 'gfm') -> dict[str, float]:
    """The paper's scores of one model.

    Args:
        model: ``'gfm'`` or ``'in22k'``.

    Returns:
        Entry name -> score.

    .. versionadded:: 0.1
    """
    if model not in ('gfm', 'in22k'):
        raise ValueError(f"model must be 'gfm' or 'in22k', got {model!r}")
    return {e.name: getattr(e, model) for e in PAPER}


def find_metrics_csv(path: Path) -> Path:
    """The ``metrics.csv`` of a run: the file itself, or the newest one under a folder.

    Args:
        path: a ``metrics.csv`` file or a log folder (e.g. ``lightning_logs/``).

    Returns:
        Path of the CSV file.

    Raises:
        FileNotFoundError: if *path* or the file is missing.

    .. versionadded:: 0.1
    """
    if path.is_file():
        return path
    if not path.is_dir():
        problem = (
            'not a regular file or folder (a device, FIFO or socket is never read)'
            if os.path.lexists(path)
            else 'no such file or folder'
        )
        raise FileNotFoundError(
            f'{path}: {problem}; expected a metrics.csv or a log folder holding one'
        )
    logs = [p for p in path.rglob('metrics.csv') if p.is_file()]
    found = sorted(logs, key=lambda p: p.stat().st_mtime)
    if not found:
        raise FileNotFoundError(
            f'no metrics.csv in {path}: run `torchgeo test --config ... '
            '--trainer.logger=CSVLogger` for that dataset first, or pass the file itself'
        )
    return found[-1]


def read_metric(path: Path, column: str) -> float:
    """Last logged value of a metric in a Lightning CSV log.

    Args:
        path: a ``metrics.csv`` file or a folder holding one.
        column: metric name (e.g. ``test_OverallF1Score``).

    Returns:
        The value.

    Raises:
        FileNotFoundError: if there is no ``metrics.csv``.
        KeyError: if the log has no value for *column*.
        ValueError: if the file is not a CSV, or the value not a finite number.

    .. versionadded:: 0.1
    """
    csv_path = find_metrics_csv(path)
    try:
        with csv_path.open(newline='') as f:
            values = [row[column] for row in csv.DictReader(f) if row.get(column)]
    except (UnicodeDecodeError, csv.Error) as err:
        raise ValueError(
            f"{csv_path} is not a CSV log ({err}): pass the metrics.csv of Lightning's "
            'CSVLogger'
        ) from None
    if not values:
        raise KeyError(
            f'{csv_path} has no value for {column!r}: was the test stage run?'
        )
    try:
        value = float(values[-1])
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ValueError(
            f'{csv_path}: {column} is {values[-1]!r}, expected a finite number; '
            're-run the test stage (did the run diverge?)'
        )
    return value


def collect(runs: Mapping[str, Path]) -> dict[str, float]:
    """Read the test metrics of finished runs, in the paper's units.

    Args:
        runs: run name (a config in ``configs/finetune/``, see :data:`RUNS`) -> its
            log (``metrics.csv`` or a folder holding one).

    Returns:
        Entry name -> score, for every entry of the given runs.

    Raises:
        ValueError: for an unknown run name, or a percentage metric outside [0, 1].
        FileNotFoundError, KeyError: see :func:`read_metric`.

    .. versionadded:: 0.1
    """
    scores = {}
    for run_name, path in runs.items():
        if run_name not in RUNS:
            raise ValueError(f'unknown run name {run_name!r}; use one of {list(RUNS)}')
        for e in PAPER:
            if e.run == run_name:
                value = read_metric(Path(path), e.column)
                # the table shows these x100: a logged percentage would be 100x off
                if e.scale == 100 and not 0 <= value <= 1:
                    raise ValueError(
                        f'{path}: {e.column} is {value}, expected a fraction in '
                        '[0, 1] (torchmetrics logs fractions); was it logged in %?'
                    )
                scores[e.name] = e.scale * value
    return scores


def discover_runs(logs: Path) -> dict[str, Path]:
    """Find the runs under a log folder by name (``<logs>/<run>/.../metrics.csv``).

    The fine-tuning configs log with ``CSVLogger(save_dir='logs', name=<config>)``, so
    after ``torchgeo test`` of each config, ``discover_runs(Path('logs'))`` finds them.

    Args:
        logs: the loggers' ``save_dir``.

    Returns:
        Run name -> folder, for each run that has a ``metrics.csv``.

    Raises:
        FileNotFoundError: if *logs* is not a folder, or holds no run.

    .. versionadded:: 0.1
    """
    if not logs.is_dir():
        problem = 'not a folder' if logs.exists() else 'no such folder'
        raise FileNotFoundError(
            f"{logs}: {problem}; expected the folder of the runs' logs "
            '(<logs>/<run>/version_*/metrics.csv)'
        )
    found = {run: logs / run for run in RUNS if any((logs / run).rglob('metrics.csv'))}
    if not found:
        raise FileNotFoundError(
            f'no runs in {logs}: expected {logs}/<run>/version_*/metrics.csv for a run '
            f'in {list(RUNS)}'
        )
    return found


def format_table(
    ours: Mapping[str, float] | None = None, baseline: Mapping[str, float] | None = None
) -> str:
    """Side-by-side table of the paper's numbers and ours, with ARP rows.

    Args:
        ours: our scores (entry name -> score), or None for the paper's table only.
        baseline: our baseline scores; the paper's IN-22k scores where missing.

    Returns:
        The table as Markdown text.

    .. versionadded:: 0.1
    """
    in22k, gfm = paper_scores('in22k'), paper_scores('gfm')
    base = {**in22k, **(baseline or {})}
    head = ['dataset', 'metric', 'IN-22k (paper)', 'GFM (paper)']
    if baseline:
        head.append('IN-22k (ours)')
    if ours is not None:
        head.append('GFM (ours)')
    rows = [head, ['---'] * len(head)]
    for e in PAPER:
        row = [e.dataset, e.metric, _fmt(e.in22k), _fmt(e.gfm)]
        if baseline:
            row.append(_fmt(baseline.get(e.name)))
        if ours is not None:
            row.append(_fmt(ours.get(e.name)))
        rows.append(row)
    arp = [
        'ARP vs IN-22k',
        '%',
        '0.00',
        f'{average_relative_performance(gfm, in22k):.2f}',
    ]
    if baseline:
        arp.append('0.00')
    if ours is not None:
        arp.append(_arp_cell(ours, base))
    rows.append(arp)
    return '\n'.join('| ' + ' | '.join(r) + ' |' for r in rows)


def _arp_cell(scores: Mapping[str, float], baseline: Mapping[str, float]) -> str:
    if not scores:
        return '-'
    value = f'{average_relative_performance(scores, baseline):.2f}'
    n, total = len(dataset_terms(scores, baseline)), len(_datasets())
    # an ARP over fewer datasets is not the paper's number: say so
    return value if n == total else f'{value} ({n}/{total} datasets)'


def _datasets() -> list[str]:
    return list(dict.fromkeys(e.dataset for e in PAPER))


def _fmt(value: float | None) -> str:
    if value is None:
        return '-'
    return f'{value:.3f}' if abs(value) < 1 or 10 < abs(value) < 50 else f'{value:.2f}'


def radar_chart(
    models: Mapping[str, Mapping[str, float]], baseline: Mapping[str, float]
) -> 'matplotlib.figure.Figure':
    """Radar chart of each model's per-dataset score relative to the baseline (= 100).

    Args:
        models: label -> scores (entry name -> score).
        baseline: entry name -> baseline score.

    Returns:
        The figure (save it with :func:`save_figure`).

    .. versionadded:: 0.1
    """
    from matplotlib.figure import Figure

    datasets = _datasets()
    angles = [2 * math.pi * i / len(datasets) for i in range(len(datasets))]
    fig = Figure(figsize=(6, 6))
    ax = fig.add_subplot(projection='polar')
    shown = []
    for label, scores in models.items():
        terms = dataset_terms(scores, baseline)
        radii = [100 + terms.get(d, math.nan) for d in datasets]
        shown += [r for r in radii if not math.isnan(r)]
        ax.plot([*angles, angles[0]], [*radii, radii[0]], marker='o', label=label)
    # zoom on the data (differences are a few percent) rather than start at 0
    lo, hi = min(shown, default=100), max(shown, default=100)
    ax.set_ylim(lo - 0.2 * (hi - lo) - 1, hi + 1)
    ax.set_xticks(angles, datasets)
    ax.set_title('Score relative to the IN-22k baseline (= 100)')
    ax.legend(loc='lower right', bbox_to_anchor=(1.15, -0.1))
    return fig


def check_figure_path(path: Path, protect: Sequence[Path] = ()) -> str:
    """Check that a figure can be saved at *path*, before any work is done.

    Args:
        path: where to save it; the extension gives the format.
        protect: the metrics files read; never replaced by the chart.

    Returns:
        The format (extension, lower case).

    Raises:
        ValueError: if matplotlib cannot write the extension.
        FileNotFoundError: if the folder is missing.
        IsADirectoryError: if *path* is a folder.
        OutputError: if *path* is one of *protect*, a device, FIFO or socket, holds
            a NUL byte, has a name too long, or its folder is not writable.

    .. versionadded:: 0.1
    """
    if '\0' in os.fspath(path):
        raise OutputError(
            f'cannot save a figure as {path!r}: the path holds a NUL byte'
        )
    from matplotlib.backend_bases import FigureCanvasBase

    formats = FigureCanvasBase.get_supported_filetypes()
    fmt = path.suffix[1:].lower()
    if fmt not in formats:
        raise ValueError(
            f'cannot save a figure as {path}: unknown image extension {path.suffix!r}; '
            f'use one of {", ".join("." + f for f in sorted(formats))}'
        )
    try:
        parent, is_dir = path.parent.is_dir(), path.is_dir()
    except OSError:  # a name too long: check_output says so
        parent, is_dir = True, False
    if not parent:
        raise FileNotFoundError(
            f'cannot save a figure as {path}: no folder {path.parent}; create it first'
        )
    if is_dir:
        raise IsADirectoryError(
            f'cannot save a figure as {path}: it is a folder; add a file name'
        )
    try:  # a chart is replaced, but never a log, device, FIFO or unwritable folder
        check_output(path, overwrite=True, protect=protect)
    except OutputError as error:
        raise OutputError(f'cannot save a figure as {error}') from None
    return fmt


def save_figure(fig: 'matplotlib.figure.Figure', path: Path) -> None:
    """Save a figure via a temporary file, so that *path* is never half-written.

    Args:
        fig: the figure.
        path: where to save it (see :func:`check_figure_path`).

    .. versionadded:: 0.1
    """
    fmt = check_figure_path(path)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=150, bbox_inches='tight')


# the command line's functions moved to torchgeo_gfm.cli.arp in 0.2
__getattr__ = moved('torchgeo_gfm.arp', 'torchgeo_gfm.cli.arp')

if __name__ == '__main__':  # pragma: no cover: deprecated, use `torchgeo-gfm arp`
    raise SystemExit(__getattr__('main')())
