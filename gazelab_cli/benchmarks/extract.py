"""`gazelab bench extract`: feature extraction speed on 640x480 JPEG frames of a real face.

The frames are scikit-image's astronaut photograph placed into a 640x480 frame with small
random changes (scale, position, rotation, brightness), JPEG-encoded like a browser upload.
Timings include the JPEG decode. One process (one thread) gives the per-frame figures; a
process pool over all cores gives the throughput. Pool workers are spawned, not forked,
because MediaPipe does not survive a fork (see collection.extraction).

The floor — decoding the JPEG and running Face Mesh alone, nothing of ours — is timed on
the same frames in the same loop, alternating with the full extraction frame by frame, so
load from elsewhere on the machine hits both alike; `overhead_ratio` is extraction ÷ floor
(CPU time of this process, medians per frame).
"""
from __future__ import annotations

import multiprocessing
import os
import time

import cv2
import numpy as np

from collection.extraction import extract, face_mesh

DISTINCT_FRAMES = 40
WARMUP_FRAMES = 5


def make_frames(count: int, seed: int = 0) -> list[bytes]:
    """`count` JPEG frames (640x480) of the astronaut with small variations."""
    from skimage import data
    photo = data.astronaut()[0:256, 97:353]          # head and shoulders
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(count):
        side = int(480 * rng.uniform(0.75, 1.0))
        face = cv2.resize(photo, (side, side), interpolation=cv2.INTER_AREA)
        frame = np.full((480, 640, 3), rng.integers(60, 140, size=3), np.uint8)
        x = (640 - side) // 2 + int(rng.integers(-60, 61))
        y = max(0, (480 - side) // 2 + int(rng.integers(-20, 21)))
        frame[y:y + side, x:x + side] = face[:480 - y]
        rotation = cv2.getRotationMatrix2D((320, 240), float(rng.uniform(-6, 6)), 1.0)
        frame = cv2.warpAffine(frame, rotation, (640, 480), borderMode=cv2.BORDER_REPLICATE)
        frame = cv2.convertScaleAbs(frame, alpha=float(rng.uniform(0.85, 1.15)))
        ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
        frames.append(jpeg.tobytes())
    return frames


def _single_thread() -> None:
    cv2.setNumThreads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def decode_and_face_mesh(data: bytes):
    """The floor: what any use of Face Mesh on a JPEG costs (decode, RGB, the graph)."""
    rgb = cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    with face_mesh() as mesh:
        return mesh.process(rgb)


def _timed(function, *args) -> tuple[float, float, object]:
    """(wall ms, CPU ms of this process, result)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = function(*args)
    return (time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000, result


def time_one_process(frames: list[bytes], config) -> dict:
    """Per frame, alternating: full extraction (wall and CPU ms, verdict) and the floor."""
    _single_thread()
    for data in frames[:WARMUP_FRAMES]:
        extract(data, config)
        decode_and_face_mesh(data)
    times = {"wall": [], "cpu": [], "floor_wall": [], "floor_cpu": [], "status": []}
    for data in frames:
        floor_wall, floor_cpu, _ = _timed(decode_and_face_mesh, data)
        wall, cpu, result = _timed(extract, data, config)
        for key, value in zip(times, (wall, cpu, floor_wall, floor_cpu, result.status)):
            times[key].append(value)
    return times


_worker_config = None


def _init_worker(config) -> None:
    global _worker_config
    _single_thread()
    _worker_config = config
    for data in make_frames(2, seed=99):     # start MediaPipe before the clock runs
        extract(data, config)


def _extract_status(data: bytes) -> str:
    return extract(data, _worker_config).status


def frames_per_second_pool(frames: list[bytes], config, workers: int) -> float:
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers, initializer=_init_worker, initargs=(config,)) as pool:
        pool.map(_extract_status, frames[: workers * 2])     # every worker is up and warm
        start = time.perf_counter()
        pool.map(_extract_status, frames, chunksize=8)
        return len(frames) / (time.perf_counter() - start)


def run(frame_count: int, config, workers: int | None = None) -> dict:
    workers = workers or os.cpu_count() or 1
    distinct = make_frames(min(frame_count, DISTINCT_FRAMES))
    frames = [distinct[i % len(distinct)] for i in range(frame_count)]
    timed = time_one_process(frames, config)
    times, statuses = timed["wall"], timed["status"]
    cpu_ms, floor_cpu_ms = float(np.median(timed["cpu"])), float(np.median(timed["floor_cpu"]))
    decode_ms = _decode_ms(frames[:50])
    cores = os.cpu_count() or 1
    return {
        "benchmark": "extract",
        "frames": frame_count,
        "frame_size": [640, 480],
        "ms_per_frame_median": round(float(np.median(times)), 3),
        "ms_per_frame_p95": round(float(np.percentile(times, 95)), 3),
        "ms_per_frame_mean": round(float(np.mean(times)), 3),
        "cpu_ms_per_frame": round(cpu_ms, 3),
        "floor_ms_per_frame_median": round(float(np.median(timed["floor_wall"])), 3),
        "floor_cpu_ms_per_frame": round(floor_cpu_ms, 3),
        "floor_fps": round(cores * 1000 / floor_cpu_ms, 1),
        "overhead_ratio": round(cpu_ms / floor_cpu_ms, 3),
        "overhead_ratio_wall": round(float(np.median(timed["wall"])) / float(np.median(timed["floor_wall"])), 3),
        "jpeg_decode_ms_median": round(decode_ms, 3),
        "accepted_fraction": round(statuses.count("accepted") / len(statuses), 3),
        "workers": workers,
        "frames_per_second_all_cores": round(frames_per_second_pool(frames, config, workers), 1),
        "cpu_count": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }


def _decode_ms(frames: list[bytes]) -> float:
    times = []
    for data in frames:
        start = time.perf_counter()
        cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        times.append((time.perf_counter() - start) * 1000)
    return float(np.median(times))
