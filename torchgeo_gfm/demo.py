# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Embedded demo: GFM pretraining on a generated GeoPile sample, on CPU, in a few minutes.

``python -m torchgeo_gfm.demo`` (or ``make demo``) writes the synthetic GeoPile sample, runs
``torchgeo fit --config configs/gfm_demo.yaml`` (same Lightning CLI, in this process),
exports the student as backbone weights and prints where everything is and how the loss
went. Extra arguments after the options below go to the CLI
(e.g. ``--trainer.max_epochs 2``).

.. versionadded:: 0.1
"""

import argparse
import csv
import math
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import timm
from lightning.pytorch.cli import LightningCLI
from torchgeo.datamodules import BaseDataModule
from torchgeo.tasks import BaseTask

from .datasets import write_synthetic_geopile
from .tasks.export import export_checkpoint

TEACHER_NOTICE = (
    'NOTE: this demo runs offline, where the ImageNet-22k weights of the teacher cannot be '
    'downloaded. Its teacher is a small Swin with RANDOM weights (frozen): the distillation '
    'term then pulls the student towards fixed random features, which shows the mechanics '
    'but not the benefit of the paper, whose teacher is the ImageNet-22k Swin-B '
    '(configs/gfm.yaml). Pass --teacher-weights FILE to use real weights for this teacher.'
)


def parse_args(argv: Sequence[str] | None) -> tuple[argparse.Namespace, list[str]]:
    """Parse the demo's options; the rest goes to the Lightning CLI.

    Args:
        argv: command-line arguments.

    Returns:
        The options and the remaining arguments.
    """
    parser = argparse.ArgumentParser(
        prog='python -m torchgeo_gfm.demo', description=__doc__
    )
    # the config shipped in the package: works from a clone and after a pip install
    default = Path(__file__).parent / 'configs' / 'gfm_demo.yaml'
    parser.add_argument('--config', default=default, type=Path)
    parser.add_argument('--output', default='output/demo', type=Path)
    parser.add_argument('--images-per-class', default=8, type=int)
    parser.add_argument(
        '--teacher-weights',
        type=Path,
        help='weights file for the demo teacher (timm or Microsoft Swin key names)',
    )
    args, extra = parser.parse_known_args(argv)
    # 'python -m torchgeo_gfm.demo -- --trainer.max_epochs 1': the separator is ours
    return args, [a for a in extra if a != '--']


def fit(args: argparse.Namespace, extra: list[str]) -> LightningCLI:
    """Run ``torchgeo fit`` with the demo config, outputs redirected to ``args.output``.

    Args:
        args: the demo's options.
        extra: more CLI arguments.

    Returns:
        The CLI, holding the trainer.
    """
    out = args.output
    cli_args = [
        'fit',
        f'--config={args.config}',
        f'--data.init_args.root={out / "geopile"}',
        f'--trainer.default_root_dir={out}',
        f'--trainer.logger.init_args.save_dir={out}',
        f'--model.init_args.plot_dir={out / "reconstructions"}',
        f'--trainer.callbacks.init_args.dirpath={out / "checkpoints"}',
    ]
    if args.teacher_weights:
        cli_args.append(f'--model.init_args.teacher_weights={args.teacher_weights}')
    # the same CLI as the `torchgeo` command (torchgeo.main), keeping the trainer
    return LightningCLI(
        model_class=BaseTask,
        datamodule_class=BaseDataModule,
        seed_everything_default=0,
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_kwargs={'overwrite': True},
        args=cli_args + extra,
    )


def loss_by_epoch(metrics_csv: Path) -> list[tuple[int, dict[str, float]]]:
    """Mean training losses per epoch from a CSVLogger ``metrics.csv``.

    Args:
        metrics_csv: the logger's file.

    Returns:
        ``(epoch, {metric: mean})`` sorted by epoch.
    """
    sums: dict[int, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    with open(metrics_csv, newline='') as f:
        for row in csv.DictReader(f):
            for key in ('train_loss', 'train_loss_mim', 'train_loss_distill'):
                if row.get(key):
                    sums[int(row['epoch'])][key].append(float(row[key]))
    return [
        (epoch, {k: math.fsum(v) / len(v) for k, v in values.items()})
        for epoch, values in sorted(sums.items())
    ]


def last_checkpoint(cli: LightningCLI) -> Path:
    """The run's ``last.ckpt``.

    Args:
        cli: the finished CLI.

    Returns:
        Its path.
    """
    callback: Any = cli.trainer.checkpoint_callback
    return Path(callback.last_model_path)


def report(cli: LightningCLI, backbone: Path, plots: Path) -> None:
    """Print where the outputs are and the loss per epoch.

    Args:
        cli: the finished CLI.
        backbone: the exported backbone file.
        plots: the folder of reconstruction figures.
    """
    trainer: Any = cli.trainer
    print('\n== GFM demo finished ==')
    print(f'checkpoint (resume: --ckpt_path last): {last_checkpoint(cli)}')
    print(f'reconstruction figures: {plots} ({len(list(plots.glob("*.png")))} PNG)')
    print(f'exported backbone (timm gfm_swin_base names): {backbone}')
    log_dir = Path(trainer.logger.log_dir)
    print(f'metrics: {log_dir / "metrics.csv"}\n')
    rows = loss_by_epoch(log_dir / 'metrics.csv')
    print(f'{"epoch":>5} {"loss":>9} {"loss_mim":>9} {"loss_distill":>13}')
    for epoch, m in rows:
        print(
            f'{epoch:>5} {m["train_loss"]:>9.4f} {m["train_loss_mim"]:>9.4f} '
            f'{m["train_loss_distill"]:>13.4f}'
        )
    if len(rows) > 1:
        first, last = rows[0][1]['train_loss'], rows[-1][1]['train_loss']
        trend = 'went down' if last < first else 'did NOT go down'
        print(f'\nmean loss {trend}: {first:.4f} (epoch 0) -> {last:.4f} (last epoch)')


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo.

    Args:
        argv: command-line arguments (default ``sys.argv[1:]``).

    Returns:
        The exit status.
    """
    args, extra = parse_args(sys.argv[1:] if argv is None else argv)
    if not args.config.is_file():
        print(
            f'error: {args.config} not found; run from the repository root or pass --config.',
            file=sys.stderr,
        )
        return 1
    if args.teacher_weights is not None and not args.teacher_weights.is_file():
        print(
            f'error: --teacher-weights {args.teacher_weights}: no such file.',
            file=sys.stderr,
        )
        return 1
    if args.teacher_weights is None:
        print(TEACHER_NOTICE)
    root = write_synthetic_geopile(
        args.output / 'geopile', images_per_class=args.images_per_class, seed=0
    )
    print(f'synthetic GeoPile sample (procedural, not real imagery): {root}')
    cli = fit(args, extra)
    backbone = export_checkpoint(
        last_checkpoint(cli), args.output / 'gfm_demo_backbone.safetensors'
    )
    hparams = cli.model.hparams
    timm.create_model(  # proves the export loads like any timm weights
        hparams['model'],
        pretrained=True,
        pretrained_cfg_overlay={'file': str(backbone)},
        **(hparams['model_kwargs'] or {}),
    )
    report(cli, backbone, args.output / 'reconstructions')
    return 0


if __name__ == '__main__':  # pragma: no cover
    raise SystemExit(main())
