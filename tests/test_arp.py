# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

from pathlib import Path

import pytest

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

    assert main(['arp', '--run', 'oscd']) == 2
    assert 'NAME=PATH' in capsys.readouterr().out


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
