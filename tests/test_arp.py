# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

import math
import os
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from torchgeo_gfm import arp
from torchgeo_gfm.cli import main


def test_paper_arp() -> None:
    value = arp.average_relative_performance(
        arp.paper_scores('gfm'), arp.paper_scores('in22k')
    )
    assert value == pytest.approx(3.31, abs=0.02)


def test_relative_performance() -> None:
    assert arp.relative_performance(110, 100) == pytest.approx(10)
    # BigEarthNet 10%/1% count as one dataset: (10 + 30) / 2, then mean with OSCD's 0
    terms = arp.dataset_terms(
        {'bigearthnet_10': 1.1, 'bigearthnet_1': 1.3, 'oscd': 2},
        {'bigearthnet_10': 1, 'bigearthnet_1': 1, 'oscd': 2},
    )
    assert terms == pytest.approx({'BigEarthNet': 20, 'OSCD': 0})
    assert arp.average_relative_performance(
        {'bigearthnet_10': 1.1, 'bigearthnet_1': 1.3, 'oscd': 2},
        {'bigearthnet_10': 1, 'bigearthnet_1': 1, 'oscd': 2},
    ) == pytest.approx(10)


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match='unknown entries'):
        arp.average_relative_performance({'mnist': 1}, {'mnist': 1})
    with pytest.raises(ValueError, match='no scores'):
        arp.average_relative_performance({}, {})
    with pytest.raises(ValueError, match="'gfm' or 'in22k'"):
        arp.paper_scores('resnet')
    with pytest.raises(FileNotFoundError, match=r'no metrics\.csv'):
        arp.find_metrics_csv(tmp_path)
    with pytest.raises(ValueError, match='unknown run name'):
        arp.collect({'mnist': tmp_path})


def _log(path: Path, column: str, value: float) -> Path:
    path.mkdir(parents=True)
    csv = path / 'metrics.csv'
    csv.write_text(f'epoch,step,{column},train_loss\n0,1,,0.5\n0,1,{value},\n')
    return csv


def test_collect_and_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _log(tmp_path / 'oscd' / 'version_0', 'test_OverallF1Score', 0.6)
    _log(tmp_path / 'sr' / 'version_0', 'test_PSNR', 22.599)
    with pytest.raises(KeyError, match='test_SSIM'):
        arp.collect({'spacenet2_sr': tmp_path / 'sr'})
    (tmp_path / 'sr' / 'version_0' / 'metrics.csv').write_text(
        'epoch,step,test_PSNR,test_SSIM\n0,1,22.599,0.6\n'
    )
    scores = arp.collect({'oscd': tmp_path / 'oscd', 'spacenet2_sr': tmp_path / 'sr'})
    assert scores == pytest.approx(
        {'oscd': 60.0, 'spacenet2_psnr': 22.599, 'spacenet2_ssim': 0.6}
    )

    png = tmp_path / 'radar.png'
    argv = ['arp', '--run', f'oscd={tmp_path / "oscd"}', '--plot', str(png)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert '| OSCD | F1 | 52.35 | 59.82 | 60.00 |' in out
    expected = arp.relative_performance(60, 52.35)
    assert f'| ARP vs IN-22k | % | 0.00 | 3.30 | {expected:.2f} (1/7 datasets) |' in out
    assert png.stat().st_size > 0

    with pytest.raises(SystemExit) as exit_info:
        main(['arp', '--run', 'oscd'])
    assert exit_info.value.code == 2
    assert "expected NAME=PATH, got 'oscd'" in capsys.readouterr().err


def test_cli_baseline_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _log(tmp_path / 'g', 'test_OverallF1Score', 0.66)
    _log(tmp_path / 'b', 'test_OverallF1Score', 0.6)
    argv = [
        'arp',
        '--run',
        f'dsifn={tmp_path / "g"}',
        '--baseline',
        f'dsifn={tmp_path / "b"}',
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert '| DSIFN | F1 | 69.62 | 71.24 | 60.00 | 66.00 |' in out
    assert out.strip().endswith('| 0.00 | 10.00 (1/7 datasets) |')


def test_full_run_set_and_chart() -> None:
    # all 7 datasets: the plain ARP, and the chart zooms on the data
    ours = {k: v * 1.01 for k, v in arp.paper_scores('in22k').items()}
    table = arp.format_table(ours)
    assert table.endswith('| ARP vs IN-22k | % | 0.00 | 3.30 | 1.00 |')
    in22k = arp.paper_scores('in22k')
    fig = arp.radar_chart({'IN-22k': in22k, 'ours': ours}, in22k)
    lo, hi = fig.axes[0].get_ylim()
    assert 98 < lo < 100
    assert 101 < hi < 103


def test_paper_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(['arp']) == 0
    out = capsys.readouterr().out
    assert out.count('\n') == len(arp.PAPER) + 3
    assert '| SpaceNet2 | SSIM | 0.612 | 0.638 |' in out


def test_discover_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(FileNotFoundError, match='no runs in'):
        arp.discover_runs(tmp_path)
    _log(tmp_path / 'whu_building' / 'version_3', 'test_OverallJaccardIndex', 0.904)
    _log(tmp_path / 'elsewhere', 'test_OverallJaccardIndex', 0.1)
    assert arp.discover_runs(tmp_path) == {'whu_building': tmp_path / 'whu_building'}
    assert main(['arp', '--logs', str(tmp_path), '--baseline-logs', str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert '| WHU Aerial | IoU | 90.40 | 90.70 | 90.40 | 90.40 |' in out
    assert main(['arp', '--logs', str(tmp_path / 'none')]) == 2
    assert f'{tmp_path / "none"}: no such folder' in capsys.readouterr().err


def _files(root: Path) -> set[Path]:
    return set(root.rglob('*'))


# (metrics.csv text or None, argv after `arp`, text stderr must hold); {p} is tmp_path
BAD_INPUTS = {
    'zero baseline': (
        'epoch,test_OverallF1Score\n0,0.0\n',
        ['--run', 'oscd={p}/ok', '--baseline', 'oscd={p}/run'],
        "baseline score of OSCD F1 ('oscd') is 0",
    ),
    'nan score': (
        'epoch,test_OverallF1Score\n0,nan\n',
        ['--run', 'oscd={p}/run'],
        "{p}/run/metrics.csv: test_OverallF1Score is 'nan'",
    ),
    'inf score': (
        'epoch,test_OverallF1Score\n0,-inf\n',
        ['--run', 'oscd={p}/run'],
        "test_OverallF1Score is '-inf', expected a finite number",
    ),
    'not a number': (
        'epoch,test_OverallF1Score\n0,abc\n',
        ['--run', 'oscd={p}/run'],
        "test_OverallF1Score is 'abc'",
    ),
    'percentage': (
        'epoch,test_OverallF1Score\n0,60\n',
        ['--run', 'oscd={p}/run'],
        '{p}/run: test_OverallF1Score is 60.0, expected a fraction in [0, 1]',
    ),
    'negative': (
        'epoch,test_OverallF1Score\n0,-0.5\n',
        ['--run', 'oscd={p}/run'],
        'test_OverallF1Score is -0.5, expected a fraction',
    ),
    'missing column': (
        'epoch,train_loss\n0,0.5\n',
        ['--run', 'oscd={p}/run'],
        "{p}/run/metrics.csv has no value for 'test_OverallF1Score'",
    ),
    'empty csv': ('', ['--run', 'oscd={p}/run'], 'has no value for'),
    'binary file': (
        '\x89PNG\r\n\x1a\n\xff\xfe',
        ['--run', 'oscd={p}/run'],
        '{p}/run/metrics.csv is not a CSV log',
    ),
    'missing run path': (
        None,
        ['--run', 'oscd={p}/missing'],
        '{p}/missing: no such file or folder',
    ),
    'empty run folder': (
        None,
        ['--run', 'oscd={p}/empty'],
        'no metrics.csv in {p}/empty',
    ),
    'missing logs': (None, ['--logs', '{p}/missing'], '{p}/missing: no such folder'),
    'logs is a file': (None, ['--logs', '{p}/ok/metrics.csv'], 'not a folder'),
    'missing baseline logs': (
        None,
        ['--baseline-logs', '{p}/missing'],
        '{p}/missing: no such folder',
    ),
    'unknown run': (None, ['--run', 'mnist={p}/ok'], "unknown run name 'mnist'"),
    'run twice': (
        None,
        ['--run', 'oscd={p}/ok', '--run', 'oscd={p}/ok'],
        "runs ['oscd'] given more than once",
    ),
    'plot in missing folder': (
        None,
        ['--run', 'oscd={p}/ok', '--plot', '{p}/none/radar.png'],
        'cannot save a figure as {p}/none/radar.png: no folder {p}/none',
    ),
    'plot extension': (
        None,
        ['--plot', '{p}/radar.xyz'],
        "{p}/radar.xyz: unknown image extension '.xyz'; use one of",
    ),
    'plot without extension': (
        None,
        ['--plot', '{p}/radar'],
        "unknown image extension ''",
    ),
    'plot is a folder': (None, ['--plot', '{p}/ok.png'], 'it is a folder'),
    'plot replaces the log': (
        None,
        ['--run', 'oscd={p}/log.png', '--plot', '{p}/log.png'],
        'is the input {p}/log.png',
    ),
    'plot replaces the log found': (
        None,
        ['--baseline', 'oscd={p}/png', '--plot', '{p}/png/metrics.png'],
        'is the input {p}/png/metrics.csv',
    ),
    'run is a device': (None, ['--run', 'oscd=/dev/null'], 'not a regular file'),
    'plot path holds NUL': (None, ['--plot', '{p}/a\0b.png'], 'NUL byte'),
    'plot name too long': (None, ['--plot', '{p}/' + 'x' * 300 + '.png'], 'bytes long'),
    'folder named metrics.csv': (None, ['--run', 'oscd={p}/dir'], 'no metrics.csv'),
}


@pytest.mark.parametrize('case', BAD_INPUTS)
def test_cli_refuses_bad_input(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text, argv, expected = BAD_INPUTS[case]
    _log(tmp_path / 'ok', 'test_OverallF1Score', 0.6)
    (tmp_path / 'ok.png').mkdir()
    (tmp_path / 'empty').mkdir()
    (tmp_path / 'dir' / 'metrics.csv').mkdir(parents=True)
    (tmp_path / 'log.png').write_text('epoch,test_OverallF1Score\n0,0.6\n')
    (tmp_path / 'png').mkdir()
    os.link(tmp_path / 'log.png', tmp_path / 'png' / 'metrics.csv')
    os.link(tmp_path / 'log.png', tmp_path / 'png' / 'metrics.png')  # the same file
    if text is not None:
        (tmp_path / 'run').mkdir()
        (tmp_path / 'run' / 'metrics.csv').write_bytes(text.encode('latin-1'))
    before = _files(tmp_path)
    assert main(['arp', *(a.format(p=tmp_path) for a in argv)]) == 2
    out, err = capsys.readouterr()
    assert out == ''
    assert err.startswith('torchgeo-gfm arp: error: ')
    assert expected.format(p=tmp_path) in err
    assert err.count('\n') == 1  # one paragraph, no traceback
    assert _files(tmp_path) == before


@pytest.mark.parametrize('value', ['oscd', 'oscd=', '=logs/oscd'])
def test_cli_refuses_malformed_run(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    for option in ('--run', '--baseline'):
        with pytest.raises(SystemExit) as exit_info:
            main(['arp', option, value])
        assert exit_info.value.code == 2
        out, err = capsys.readouterr()
        assert out == ''
        assert f'argument {option}: expected NAME=PATH, got {value!r}' in err


def test_cli_plot_formats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ('radar.svg', 'radar.PDF'):
        assert main(['arp', '--plot', str(tmp_path / name)]) == 0
        assert f'radar chart: {tmp_path / name}' in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ['radar.PDF', 'radar.svg']
    assert (tmp_path / 'radar.svg').read_text().lstrip().startswith('<?xml')


def test_save_figure_never_half_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    png = tmp_path / 'radar.png'
    png.write_bytes(b'old chart')

    def fail(self: object, fname: Path, **kwargs: object) -> None:
        Path(fname).write_bytes(b'half a chart')
        raise KeyboardInterrupt

    in22k = arp.paper_scores('in22k')
    fig = arp.radar_chart({'IN-22k': in22k}, in22k)
    monkeypatch.setattr(type(fig), 'savefig', fail)
    with pytest.raises(KeyboardInterrupt):
        arp.save_figure(fig, png)
    assert list(tmp_path.iterdir()) == [png]
    assert png.read_bytes() == b'old chart'


def test_api_refuses_bad_scores() -> None:
    with pytest.raises(ValueError, match='baseline score of metric is 0'):
        arp.relative_performance(1, 0)
    with pytest.raises(ValueError, match='score of metric is nan'):
        arp.relative_performance(math.nan, 1)
    with pytest.raises(ValueError, match=r"no baseline score for OSCD F1 \('oscd'\)"):
        arp.dataset_terms({'oscd': 50}, {})
    with pytest.raises(
        ValueError, match=r"baseline score of DSIFN F1 \('dsifn'\) is inf"
    ):
        arp.average_relative_performance({'dsifn': 1}, {'dsifn': math.inf})
    with pytest.raises(ValueError, match='unknown image extension'):
        arp.check_figure_path(Path('radar.gif2'))


def _expected_arp(scores: dict[str, float], baseline: dict[str, float]) -> float:
    """The docstring's ARP, computed independently: mean over datasets of the mean
    relative performance of their metrics."""
    per_dataset: dict[str, list[float]] = {}
    for entry in arp.PAPER:
        if entry.name in scores:
            s, b = scores[entry.name], baseline[entry.name]
            per_dataset.setdefault(entry.dataset, []).append((s - b) / b * 100)
    means = [sum(v) / len(v) for v in per_dataset.values()]
    return sum(means) / len(means)


NAMES = [e.name for e in arp.PAPER]
finite = st.floats(-1e6, 1e6, allow_nan=False)
nonzero = st.floats(1e-3, 1e6) | st.floats(-1e6, -1e-3)


@st.composite
def score_sets(draw: st.DrawFn) -> tuple[dict[str, float], dict[str, float]]:
    names = draw(st.lists(st.sampled_from(NAMES), min_size=1, unique=True))
    scores = {n: draw(finite) for n in names}
    baseline = {n: draw(nonzero) for n in NAMES}
    return scores, baseline


@settings(max_examples=200, deadline=None)
@given(score_sets())
def test_arp_is_the_documented_formula(
    sets: tuple[dict[str, float], dict[str, float]],
) -> None:
    scores, baseline = sets
    expected = _expected_arp(scores, baseline)
    value = arp.average_relative_performance(scores, baseline)
    assert value == pytest.approx(expected, rel=1e-9, abs=1e-6)


@settings(max_examples=100, deadline=None)
@given(
    score_sets(),
    st.sampled_from([math.nan, math.inf, -math.inf]),
    st.booleans(),
    st.data(),
)
def test_arp_refuses_non_finite(
    sets: tuple[dict[str, float], dict[str, float]],
    bad: float,
    in_baseline: bool,
    data: st.DataObject,
) -> None:
    scores, baseline = sets
    name = data.draw(st.sampled_from(sorted(scores)))
    (baseline if in_baseline else scores)[name] = bad
    entry = next(e for e in arp.PAPER if e.name == name)
    role = 'baseline score' if in_baseline else 'score'
    message = f'{role} of {entry.dataset} {entry.metric} ({name!r}) is {bad}'
    with pytest.raises(ValueError, match=re.escape(message)):
        arp.average_relative_performance(scores, baseline)


@pytest.mark.parametrize('target', ['null.png', 'fifo.png'])
def test_plot_never_replaces_a_device_or_fifo(
    target: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    os.mkfifo(tmp_path / 'fifo.png')
    (tmp_path / 'null.png').symlink_to('/dev/null')
    path = str(tmp_path / target)
    assert main(['arp', '--plot', path]) == 2
    err = capsys.readouterr().err
    assert f'cannot save a figure as {path}: ' in err
    assert 'write to a file' in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ['fifo.png', 'null.png']
    assert (tmp_path / 'null.png').readlink() == Path('/dev/null')


def test_plot_has_the_umask_mode(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        assert main(['arp', '--plot', str(tmp_path / 'radar.svg')]) == 0
    finally:
        os.umask(old)
    assert (tmp_path / 'radar.svg').stat().st_mode & 0o777 == 0o640
