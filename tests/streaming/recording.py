# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""A GeoPileStreamingDataModule that records what each rank is served (test_fit_resume.py).

Selected on the command line with ``--data.class_path
tests.streaming.recording.RecordingStreamingDataModule``; writes one JSON line per batch
to the file named by ``GFM_RECORD``: ``{rank, global_step, epoch, md5}``, the md5 of each
uint8 image as served (before the augmentation). With ``GFM_RECORD_HOLD`` = K, every rank
stops at the batch of global step K, once it is recorded, until the test kills the run.
"""

import hashlib
import json
import os
import time

from torchgeo.datasets.utils import Sample

from torchgeo_gfm.datamodules import GeoPileStreamingDataModule


class RecordingStreamingDataModule(GeoPileStreamingDataModule):
    """GeoPileStreamingDataModule that appends each batch's image hashes to a file."""

    def on_after_batch_transfer(self, batch: Sample, dataloader_idx: int) -> Sample:
        """Record the uint8 batch, then augment it as usual.

        Args:
            batch: a batch from the streaming loader.
            dataloader_idx: index of the data loader.

        Returns:
            The augmented batch.
        """
        trainer = self.trainer
        assert trainer is not None
        if trainer.training:
            images = batch['image']
            assert not images.dtype.is_floating_point  # uint8 until augmented
            line = {
                'rank': trainer.global_rank,
                'global_step': trainer.global_step,
                'epoch': trainer.current_epoch,
                'md5': [
                    hashlib.md5(x.cpu().numpy().tobytes()).hexdigest() for x in images
                ],
            }
            with open(os.environ['GFM_RECORD'], 'a') as f:  # one write per line: atomic
                f.write(json.dumps(line) + '\n')
                f.flush()
            hold = os.environ.get('GFM_RECORD_HOLD')
            if hold is not None and trainer.global_step >= int(hold):
                while True:  # a deterministic moment for the kill: wait for SIGKILL
                    time.sleep(1)
        return super().on_after_batch_transfer(batch, dataloader_idx)
