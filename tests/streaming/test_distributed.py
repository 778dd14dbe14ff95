# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Streaming from the S3 server with 2 processes x 2 workers: exactly once, and resumable."""

import collections
import hashlib
import json
import multiprocessing
import os
from pathlib import Path

import pytest

from torchgeo_gfm.datasets import GeoPile
from torchgeo_gfm.datasets.utils import read_rgb

from . import stream_rank
from .conftest import free_port


def expected_hashes(root: Path) -> collections.Counter[str]:
    """md5 of every image of the GeoPile folder, decoded as the shards are."""
    pile = GeoPile(root)
    return collections.Counter(
        hashlib.md5(read_rgb(f, 64).numpy().tobytes()).hexdigest() for f in pile.files
    )


def _rank(rank: int, port: int, args: list[str]) -> None:
    """Child process body: the environment torchrun gives a rank, then the rank script."""
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE='2',
        MASTER_ADDR='127.0.0.1',
        MASTER_PORT=str(port),
    )
    stream_rank.main(args[0], args[1], int(args[2]), int(args[3]), args[4])


def run_ranks(
    url: str, tmp: Path, tag: str, epochs: int, stop_after: int = -1
) -> list[list[list[str]]]:
    """Start 2 ranks as torchrun would; return each rank's per-epoch image hashes.

    Forked, not spawned: a fresh interpreter per rank would re-import torch, Lightning
    and TorchGeo (most of this test's time on 2 cores); the ranks still are separate
    processes joined by gloo, each with its own 2 DataLoader workers.
    """
    port, procs, outs = free_port(), [], []
    context = multiprocessing.get_context('fork')
    for rank in range(2):
        out = tmp / f'{tag}-{rank}.json'
        args = [url, str(out), str(epochs), str(stop_after), str(tmp / 'state.json')]
        procs.append(context.Process(target=_rank, args=(rank, port, args)))
        procs[-1].start()
        outs.append(out)
    for proc in procs:
        proc.join(timeout=240)
        assert proc.exitcode == 0
    return [json.loads(out.read_text()) for out in outs]


@pytest.mark.slow
def test_once_per_epoch_kill_and_resume(
    s3_shards: str, geopile: Path, cache_dir: str, tmp_path: Path
) -> None:
    expected = expected_hashes(geopile)
    assert len(expected) == sum(expected.values()) == 40  # hashes identify images
    # epoch 0 in full, then a kill after 3 batches of epoch 1 (rank 0 saves the state)
    before = run_ranks(s3_shards, tmp_path, 'killed', epochs=2, stop_after=3)
    served = [h for rank in before for h in rank[0]]
    assert collections.Counter(served) == expected
    assert all(len(rank[0]) == 20 for rank in before)  # ranks stay in step
    assert all(len(rank[1]) == 3 * 2 for rank in before)
    # resumed from the state: the rest of epoch 1, nothing repeated, nothing skipped
    after = run_ranks(s3_shards, tmp_path, 'resumed', epochs=1)
    served = [h for rank in before for h in rank[1]] + [h for r in after for h in r[0]]
    assert collections.Counter(served) == expected
    # shuffled across shards, anew each epoch
    assert before[0][0][:6] != before[0][1]
