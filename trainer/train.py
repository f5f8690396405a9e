"""The training loop: snapshot in, trained model + history out. Read top to bottom.

AdamW, linear warm-up then cosine decay (per step), early stopping on the validation
error (px; only in the second half of the schedule; the best epoch's weights are kept),
augmentation on the fly (half the samples mirrored), deterministic from the seed.
Data (trainer.datasets): the inputs as tensors in RAM when they fit in half of
params.memory_budget_mb, otherwise batches streamed from the snapshot's shard files; the
same seed gives the same model either way. On CUDA: bf16 autocast and the in-RAM tensors
resident on the GPU when they fit there; on CPU: all cores.
"""
from __future__ import annotations

import copy
import math
import os
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

from trainer import datasets, snapshot as snapshots
from trainer.models import build_model, count_parameters, outputs_and_features, tensors_needed
from trainer.params import TrainParams
from trainer.transforms import make_batch, mirror_targets, normalisation_stats


@dataclass
class TrainResult:
    model: torch.nn.Module
    spec: dict                       # architecture: enough to rebuild the model
    normalisation: dict
    split: dict
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    stopped: str = "completed"       # completed | early_stopping | cancelled
    samples_per_s: float = 0.0
    device: str = "cpu"
    data: str = "in_ram"             # in_ram | streamed (trainer.datasets)
    test_pred: np.ndarray | None = None
    test_features: np.ndarray | None = None   # penultimate features (personal calibration)


def pick_device(name: str) -> torch.device:
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def lr_factor(step: int, warmup_steps: int, total_steps: int, floor: float = 0.02) -> float:
    """Linear warm-up to 1, then cosine decay to `floor`."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def px_loss(pred: torch.Tensor, target: torch.Tensor, screen: torch.Tensor) -> torch.Tensor:
    """Mean Euclidean error in kilo-px of each sample's own screen: the reported metric
    itself, and (unlike a squared error) not dominated by frames where the volunteer
    was not looking at the dot."""
    return ((pred.float() - target) * screen / 1000).norm(dim=1).mean()


@torch.no_grad()
def predict_with_features(model, data, indices, stats, device,
                          batch_size: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """(n, 2) outputs and (n, F) penultimate features of the samples `indices` of `data`
    (a trainer.datasets source)."""
    model.eval()
    out, features = [], []
    for _, inputs in data.batches(torch.as_tensor(indices, dtype=torch.long), batch_size):
        batch = {k: v.to(device, non_blocking=True) for k, v in make_batch(inputs, None, stats).items()}
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            output, feature = outputs_and_features(model, batch)
        out.append(output.float().cpu())
        features.append(feature.float().cpu())
    if not out:
        return np.zeros((0, 2), np.float32), np.zeros((0, 0), np.float32)
    return torch.cat(out).numpy(), torch.cat(features).numpy()


def predict(model, data, indices, stats, device, batch_size: int = 512) -> np.ndarray:
    return predict_with_features(model, data, indices, stats, device, batch_size)[0]


def train(snapshot: snapshots.Snapshot, params: TrainParams, *,
          on_epoch: Callable[[dict], None] | None = None,
          should_stop: Callable[[], bool] | None = None, progress: bool = False,
          split: dict | None = None) -> TrainResult:
    """Train on `split` (snapshot.split's layout; default: the single split from params)."""
    # ---- setup: seed, device, split ----
    torch.manual_seed(params.seed)
    np.random.seed(params.seed)
    device = pick_device(params.device)
    if device.type == "cpu":
        torch.set_num_threads(os.cpu_count() or 1)
    split = split or snapshots.split(snapshot, params.validation_fraction, params.test_fraction, params.seed)
    train_idx, val_idx, test_idx = (split["indices"][k] for k in ("train", "validation", "test"))

    # ---- data: uint8 tensors in RAM (on the GPU when they fit) or streamed from the shards ----
    kinds = tensors_needed(params.inputs)
    if "geometry" in kinds:
        snapshots.attach_geometry(snapshot, params.camera_hfov_deg)
    if datasets.fits_in_memory(snapshot, kinds, params.memory_budget_mb):
        data_device = device
        if device.type == "cuda":
            needed = datasets.needed_bytes(snapshot, kinds)
            data_device = device if needed < 0.5 * torch.cuda.mem_get_info()[0] else torch.device("cpu")
        data = datasets.InMemory(snapshot, kinds, data_device)
    else:
        data = datasets.Streamed(snapshot, kinds)
    data_device = data.device
    stats = normalisation_stats(snapshot.images, train_idx, kinds)
    targets = torch.from_numpy(snapshot.targets).to(device)
    screens = torch.from_numpy(snapshot.screens).to(device)

    # ---- model, optimiser, schedule ----
    spec = {"name": params.architecture, "inputs": params.inputs, "image_size": params.image_size,
            **({"hfov_deg": params.camera_hfov_deg} if "geometry" in kinds else {})}
    model = build_model(spec).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=params.learning_rate, weight_decay=params.weight_decay)
    steps_per_epoch = max(1, math.ceil(len(train_idx) / params.batch_size))
    total_steps = params.epochs * steps_per_epoch
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, params.warmup_epochs * steps_per_epoch, total_steps))
    generator = torch.Generator(device=data_device).manual_seed(params.seed)
    result = TrainResult(model, {**spec, "parameters": count_parameters(model)}, stats, split,
                         device=str(device), data="in_ram" if isinstance(data, datasets.InMemory) else "streamed")

    # ---- loop ----
    best_error, best_state, stale_epochs = math.inf, None, 0
    train_seconds, train_samples = 0.0, 0
    bar = tqdm(range(1, params.epochs + 1), disable=not progress, unit="epoch", desc=params.architecture)
    for epoch in bar:
        model.train()
        started = time.perf_counter()
        order = torch.as_tensor(train_idx, device=data_device)[
            torch.randperm(len(train_idx), generator=generator, device=data_device)]
        total_loss = 0.0
        for index, inputs in data.batches(order, params.batch_size):
            if len(index) < 2:  # batch norm needs two samples
                continue
            mirror = (torch.rand(len(index), generator=generator, device=data_device) < 0.5
                      if params.mirror_augment else None)
            batch = {k: v.to(device, non_blocking=True) for k, v in make_batch(
                inputs, None, stats, augment=True, generator=generator, mirror=mirror).items()}
            index = index.to(device)
            target = targets[index] if mirror is None else mirror_targets(targets[index], mirror.to(device))
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                pred = model(batch)
            loss = px_loss(pred, target, screens[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total_loss += loss.item() * len(index)
        if device.type == "cuda":
            torch.cuda.synchronize()
        train_seconds += time.perf_counter() - started
        train_samples += len(order)

        # ---- validation, early stopping ----
        entry = {"epoch": epoch, "train_loss": total_loss / max(1, len(order)), "val_loss": None,
                 "val_error_px": None, "lr": scheduler.get_last_lr()[0],
                 "seconds": round(time.perf_counter() - started, 3)}
        if len(val_idx):
            pred = torch.from_numpy(predict(model, data, val_idx, stats, device)).to(device)
            entry["val_loss"] = px_loss(pred, targets[val_idx], screens[val_idx]).item()
            entry["val_error_px"] = float(((pred - targets[val_idx]) * screens[val_idx]).norm(dim=1).mean())
        result.history.append(entry)
        bar.set_postfix(loss=f"{entry['train_loss']:.4f}", val_px=entry["val_error_px"])
        score = entry["val_error_px"] if entry["val_error_px"] is not None else entry["train_loss"]
        if score < best_error:
            best_error, best_state, stale_epochs = score, copy.deepcopy(model.state_dict()), 0
            result.best_epoch = epoch
        else:
            stale_epochs += 1
        if on_epoch:
            on_epoch(entry)
        if should_stop and should_stop():
            result.stopped = "cancelled"
            break
        # While the learning rate is high the validation error is noise, not a trend:
        # stop early only in the second half of the schedule.
        if stale_epochs >= params.early_stopping_patience and epoch >= params.epochs // 2:
            result.stopped = "early_stopping"
            break
    bar.close()

    # ---- best weights, test predictions ----
    if best_state is not None:
        model.load_state_dict(best_state)
    result.samples_per_s = train_samples / train_seconds if train_seconds else 0.0
    result.test_pred, result.test_features = predict_with_features(model, data, test_idx, stats, device)
    return result
