# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""`torchgeo fit` with 2 DDP processes streaming from S3, killed mid-epoch and resumed.

As a user would: the shipped config, the real CLI in a subprocess (Lightning launches the
second rank itself), SIGKILL to the whole process group, then the same command with
``--ckpt_path last``. Every batch each rank is served is recorded (tests/streaming/
recording.py), so the test can check that the interrupted epoch, and the next, serve
each of the 40 images exactly once across both ranks. A quick in-process test checks the
mechanism that makes this work: the data module's own state (see
GeoPileStreamingDataModule.state_dict).
"""

import collections
import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.tasks.test_continual_pretraining_configs import TINY
from torchgeo_gfm.datamodules import GeoPileStreamingDataModule

from .test_distributed import expected_hashes

REPO = Path(__file__).parents[2]
TORCHGEO = str(Path(sys.executable).parent / 'torchgeo')
#: 40 images / (2 ranks x batch 2): 10 optimizer steps per epoch
STEPS_PER_EPOCH = 10
#: last.ckpt is saved after step 13 (3 batches into epoch 1), where run 1 is killed
KILL_STEP = 13
#: run 2 finishes the interrupted epoch 1 and all of epoch 2
EPOCHS = 3
TIMEOUT = 300  # seconds per run; each rank alone takes ~20 s to import on 2 cores


def command(s3_shards: str, cache_dir: str) -> list[str]:
    """The shipped config, overriding only sizes, data, hardware and run length."""
    return [
        TORCHGEO,
        'fit',
        f'--config={REPO / "configs" / "gfm_streaming.yaml"}',
        # the same data module, recording what it serves (before any init_args)
        '--data.class_path=tests.streaming.recording.RecordingStreamingDataModule',
        *TINY,
        f'--data.init_args.input_dir={s3_shards}',
        f'--data.init_args.cache_dir={cache_dir}',
        '--data.init_args.batch_size=2',
        '--data.init_args.num_workers=2',
        '--trainer.accelerator=cpu',
        '--trainer.devices=2',
        '--trainer.strategy=ddp',  # 2 processes joined by gloo
        f'--trainer.max_epochs={EPOCHS}',
        # on a list of callbacks, jsonargparse applies init_args to the last one: the
        # ModelCheckpoint that refreshes last.ckpt (every 500 steps as shipped)
        f'--trainer.callbacks.init_args.every_n_train_steps={KILL_STEP}',
    ]


def environment(record: Path, hold: int | None = None) -> dict[str, str]:
    """This process's environment (AWS_* point at moto), plus the recording settings."""
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        [str(REPO), *filter(None, [env.get('PYTHONPATH')])]
    )
    env['GFM_RECORD'] = str(record)
    env.pop('GFM_RECORD_HOLD', None)
    if hold is not None:
        env['GFM_RECORD_HOLD'] = str(hold)
    return env


def read_records(path: Path) -> list[dict[str, Any]]:
    """The complete JSON lines of a record file (a killed run may leave half a line)."""
    if not path.exists():
        return []
    lines = path.read_text().splitlines(keepends=True)
    return [json.loads(line) for line in lines if line.endswith('\n')]


def tail(path: Path, chars: int = 4000) -> str:
    return path.read_text(errors='replace')[-chars:] if path.exists() else ''


def served(records: list[dict[str, Any]]) -> collections.Counter[str]:
    return collections.Counter(h for r in records for h in r['md5'])


def batches(dm: GeoPileStreamingDataModule, count: int = -1) -> list[list[str]]:
    """The image hashes of the next *count* batches (all: -1) of a new training loader."""
    out = []
    for batch in dm.train_dataloader():
        out.append(
            [hashlib.md5(x.numpy().tobytes()).hexdigest() for x in batch['image']]
        )
        if len(out) == count:
            break
    return out


@pytest.mark.parametrize('before_loader', [True, False])
def test_data_module_state_resumes_the_loader(
    s3_shards: str, cache_dir: str, before_loader: bool
) -> None:
    def new_dm() -> GeoPileStreamingDataModule:
        dm = GeoPileStreamingDataModule(
            s3_shards, batch_size=2, size=64, load_size=64, cache_dir=cache_dir
        )
        dm.setup('fit')
        return dm

    assert GeoPileStreamingDataModule().state_dict() == {}  # no training loader yet
    full = batches(new_dm())  # epoch 1 of a loader, 20 batches in one process
    dm = new_dm()
    head = batches(dm, 3)
    state = dm.state_dict()
    # a new process: the state is loaded before the loader exists (Lightning's order), or
    # into it (strategies that restore the checkpoint after setting up)
    dm = new_dm()
    if before_loader:
        dm.load_state_dict(state)
        rest = batches(dm)
    else:
        loader = dm.train_dataloader()
        dm.load_state_dict(state)
        rest = [
            [hashlib.md5(x.numpy().tobytes()).hexdigest() for x in b['image']]
            for b in loader
        ]
    assert head + rest == full


@pytest.mark.slow
def test_fit_killed_and_resumed_serves_each_sample_once(
    s3_shards: str, geopile: Path, cache_dir: str, tmp_path: Path
) -> None:
    expected = expected_hashes(geopile)
    assert len(expected) == sum(expected.values()) == 40
    cmd = command(s3_shards, cache_dir)
    last = tmp_path / 'output' / 'gfm_streaming' / 'checkpoints' / 'last.ckpt'

    # run 1: every rank stops at the batch of step KILL_STEP, once recorded (last.ckpt was
    # saved at the end of step KILL_STEP - 1, before that batch); then SIGKILL. Held there,
    # not killed on the fly: a tiny model's steps are faster than this loop polls, so the
    # run could pass the next checkpoint or end before the kill
    record1, err1 = tmp_path / 'run1.jsonl', tmp_path / 'run1.err'
    with open(err1, 'w') as stderr:
        proc = subprocess.Popen(
            cmd,
            cwd=tmp_path,  # the config's checkpoint dirpath is relative
            env=environment(record1, hold=KILL_STEP),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,  # its own process group: ranks, workers
        )
        try:
            deadline = time.monotonic() + TIMEOUT
            while True:
                held = {
                    r['rank']
                    for r in read_records(record1)
                    if r['global_step'] >= KILL_STEP
                }
                if held == {0, 1} and last.exists():
                    break
                assert proc.poll() is None, f'run 1 exited early:\n{tail(err1)}'
                assert time.monotonic() < deadline, f'run 1 timed out:\n{tail(err1)}'
                time.sleep(0.2)
        finally:
            with contextlib.suppress(ProcessLookupError):  # a group already gone
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL

    ckpt = torch.load(last, map_location='cpu', weights_only=False)
    assert ckpt['global_step'] == KILL_STEP, tail(err1)
    epoch = KILL_STEP // STEPS_PER_EPOCH  # the interrupted epoch: 1
    # the loader's position (per rank), in the fit loop's state and the data module's
    position = (KILL_STEP - epoch * STEPS_PER_EPOCH) * 2
    loader = ckpt['loops']['fit_loop']['state_dict']['combined_loader'][0]
    assert loader['num_samples_yielded'] == position
    loader = ckpt['RecordingStreamingDataModule']['train_loader']
    # litdata counts epochs from 1
    assert (loader['num_samples_yielded'], loader['current_epoch']) == (
        position,
        epoch + 1,
    )

    # run 2: the same command, resumed from last.ckpt, to the end (epoch 2)
    record2, err2 = tmp_path / 'run2.jsonl', tmp_path / 'run2.err'
    with open(err2, 'w') as stderr:
        done = subprocess.run(
            [*cmd, '--ckpt_path=last'],
            check=False,  # the return code is asserted, with the stderr tail
            cwd=tmp_path,
            env=environment(record2),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
            timeout=TIMEOUT,
        )
    assert done.returncode == 0, tail(err2)

    run1, run2 = read_records(record1), read_records(record2)
    # each rank served one batch of 2 per step, in step order, in both runs
    for records in (run1, run2):
        assert all(len(r['md5']) == 2 for r in records)
        for rank in (0, 1):
            steps = [r['global_step'] for r in records if r['rank'] == rank]
            assert steps == list(range(steps[0], steps[-1] + 1)), (rank, steps)
    assert {r['global_step'] for r in run1} == set(range(KILL_STEP + 1))
    assert {r['global_step'] for r in run2} == set(
        range(KILL_STEP, EPOCHS * STEPS_PER_EPOCH)
    ), tail(err2)

    # run 2 begins with the very batches each rank was served at step KILL_STEP in run 1
    # (fetched, never trained on): the position and the epoch's shuffle were restored
    first = {r['rank']: r['md5'] for r in run2 if r['global_step'] == KILL_STEP}
    assert first == {r['rank']: r['md5'] for r in run1 if r['global_step'] == KILL_STEP}

    # epoch 0 (run 1 alone): each image once
    assert served([r for r in run1 if r['epoch'] == 0]) == expected
    # the interrupted epoch: trained on before the checkpoint, then after the resume
    before = [r for r in run1 if r['epoch'] == epoch and r['global_step'] < KILL_STEP]
    after = [r for r in run2 if r['epoch'] == epoch]
    assert served(before) + served(after) == expected, tail(err2)
    # the following epoch, in full after the resume
    assert served([r for r in run2 if r['epoch'] == epoch + 1]) == expected
