"""Where the training loop's batches come from: uint8 rows of the snapshot, channels first.

- ``InMemory``: every array the model reads as one uint8 tensor (on the GPU when it fits
  there); a batch is an index into them. The fastest path, used whenever the arrays fit
  in half of ``[training] memory_budget_mb`` (``fits_in_memory``).
- ``Streamed``: batches read from the snapshot's shard files (positioned reads, see
  shards.ShardedArray) by a background thread `prefetch` batches ahead, so reading
  overlaps the model's work. Memory: a few batches, whatever the dataset size. Measured
  on the shared 2-core CPU machine (50k-sample store, default model, batches of 64, best
  of 4 alternating rounds of 40 batches): in RAM 1166 samples/s, this thread 1211, reading
  in line without it 1173 (and 30 % more CPU: torch's idle OpenMP thread spins while the
  main thread reads), a torch DataLoader with one worker process over the same shards
  1004 (its worker's CPU not even counted) — so a thread, not worker processes. Same rows, same order, same augmentation (it is
  applied afterwards, in the loop, from the same generator): the same seed trains the
  same model on either path.

Both give ``gather(index)`` (the inputs of those rows) and ``batches(order, size)``
(``(index, inputs)`` per batch, in order).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Iterator

import numpy as np
import torch

from trainer.models import VECTOR_INPUTS
from trainer.snapshot import Snapshot
from trainer.transforms import to_tensor

CHUNK_ROWS = 2048   # rows copied at a time when loading arrays into tensors


def needed_bytes(snapshot: Snapshot, kinds: tuple[str, ...]) -> int:
    """Bytes of the arrays a model with these inputs reads, for the whole snapshot."""
    return sum(getattr(snapshot, k).nbytes if k in VECTOR_INPUTS else snapshot.images[k].nbytes for k in kinds)


def fits_in_memory(snapshot: Snapshot, kinds: tuple[str, ...], memory_budget_mb: int) -> bool:
    """Half the budget for the arrays; the rest is torch, the model, batches, activations."""
    return needed_bytes(snapshot, kinds) <= (memory_budget_mb << 20) // 2


def _rows(snapshot: Snapshot, kinds: tuple[str, ...], rows: np.ndarray) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(getattr(snapshot, k)[rows]) if k in VECTOR_INPUTS else to_tensor(snapshot.images[k][rows])
            for k in kinds}


class InMemory:
    def __init__(self, snapshot: Snapshot, kinds: tuple[str, ...], device: torch.device):
        self.tensors = {}
        for kind in kinds:
            if kind in VECTOR_INPUTS:   # angles, geometry: (N, k) float32 in RAM already
                self.tensors[kind] = torch.from_numpy(getattr(snapshot, kind)).to(device)
                continue
            array = snapshot.images[kind]
            shape = (len(array), *to_tensor(array[:1]).shape[1:])
            tensor = torch.empty(shape, dtype=torch.uint8, device=device)   # filled a chunk at a time
            for start in range(0, len(array), CHUNK_ROWS):
                tensor[start:start + CHUNK_ROWS] = to_tensor(array[start:start + CHUNK_ROWS], device)
            self.tensors[kind] = tensor
        self.device = device

    def gather(self, index: torch.Tensor) -> dict[str, torch.Tensor]:
        index = index.to(self.device)
        return {kind: tensor[index] for kind, tensor in self.tensors.items()}

    def batches(self, order: torch.Tensor, batch_size: int) -> Iterator[tuple[torch.Tensor, dict]]:
        order = order.to(self.device)
        for start in range(0, len(order), batch_size):
            index = order[start:start + batch_size]
            yield index, self.gather(index)


class Streamed:
    def __init__(self, snapshot: Snapshot, kinds: tuple[str, ...], prefetch: int = 2):
        self.snapshot, self.kinds, self.prefetch = snapshot, kinds, prefetch
        self.device = torch.device("cpu")

    def gather(self, index: torch.Tensor) -> dict[str, torch.Tensor]:
        return _rows(self.snapshot, self.kinds, index.cpu().numpy())

    def batches(self, order: torch.Tensor, batch_size: int) -> Iterator[tuple[torch.Tensor, dict]]:
        order = order.cpu()
        indices = [order[start:start + batch_size] for start in range(0, len(order), batch_size)]
        if not self.prefetch:
            for index in indices:
                yield index, self.gather(index)
            return
        with ThreadPoolExecutor(1, thread_name_prefix="batches") as pool:
            pending = [pool.submit(self.gather, index) for index in indices[:self.prefetch]]
            for i, index in enumerate(indices):
                inputs = pending.pop(0).result()
                if i + self.prefetch < len(indices):
                    pending.append(pool.submit(self.gather, indices[i + self.prefetch]))
                yield index, inputs
