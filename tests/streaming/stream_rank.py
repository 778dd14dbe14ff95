# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""One rank of a distributed streaming run (test_distributed.py forks two; torchrun works too).

Usage: ``stream_rank.py INPUT_DIR OUT_JSON EPOCHS STOP_AFTER STATE_FILE``. Reads RANK,
WORLD_SIZE, MASTER_ADDR and MASTER_PORT, joins a gloo group, and writes the md5 of every
uint8 image it was served, per epoch, to OUT_JSON. With STOP_AFTER >= 0 it saves the
loader's state after that many batches of the last epoch (rank 0, as Lightning's checkpoint does) and dies
at once; with an existing STATE_FILE it resumes from it.
"""

import hashlib
import json
import os
import sys
from pathlib import Path

import torch.distributed as dist
from litdata import StreamingDataLoader

from torchgeo_gfm.datamodules import GeoPileStreamingDataModule


def main(input_dir: str, out: str, epochs: int, stop_after: int, state: str) -> None:
    dist.init_process_group('gloo')
    dm = GeoPileStreamingDataModule(
        input_dir=input_dir,
        batch_size=2,
        num_workers=2,
        size=64,
        load_size=64,
        cache_dir=os.environ['TEST_CACHE'],  # one per node, as in real runs
    )
    dm.setup('fit')
    loader = dm.train_dataloader()
    assert isinstance(loader, StreamingDataLoader)
    if os.path.exists(state):
        loader.load_state_dict(json.loads(Path(state).read_text()))
    seen: list[list[str]] = []
    for epoch in range(epochs):
        seen.append([])
        for i, batch in enumerate(loader):
            assert not batch['image'].dtype.is_floating_point  # uint8 until the device
            seen[-1] += [
                hashlib.md5(x.numpy().tobytes()).hexdigest() for x in batch['image']
            ]
            if epoch == epochs - 1 and i + 1 == stop_after:
                dist.barrier()  # every rank has served the same number of batches
                if dist.get_rank() == 0:
                    Path(state).write_text(json.dumps(loader.state_dict()))
                Path(out).write_text(json.dumps(seen))
                dist.barrier()
                os._exit(0)  # a kill: no clean shutdown of workers or the group
    Path(out).write_text(json.dumps(seen))
    dist.destroy_process_group()


if __name__ == '__main__':
    a = sys.argv[1:]
    main(a[0], a[1], int(a[2]), int(a[3]), a[4])
