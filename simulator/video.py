"""Y4M videos of a virtual volunteer following a target schedule, for Chromium's fake webcam
(`--use-file-for-fake-video-capture=FILE.y4m`): a text header, then per frame `FRAME\\n`
and the I420 planes."""
from __future__ import annotations

from pathlib import Path

import cv2

from simulator.volunteer import VirtualVolunteer

FPS = 30
GRID_FRACTIONS = (0.1, 0.5, 0.9)


def parse_targets(spec: str, screen: tuple[int, int]) -> list[tuple[float, float]]:
    """`center`, `grid9`, or `x,y;x,y;...` (CSS px) -> target points. Raises ValueError."""
    width, height = screen
    spec = spec.strip().lower()
    if spec in ("center", "centre"):
        return [(width / 2, height / 2)]
    if spec == "grid9":
        return [(fx * width, fy * height) for fy in GRID_FRACTIONS for fx in GRID_FRACTIONS]
    points = []
    for item in filter(None, spec.split(";")):
        x, y = (float(part) for part in item.split(","))
        if not (0 <= x <= width and 0 <= y <= height):
            raise ValueError(f"target {x},{y} lies outside the {width}x{height} screen")
        points.append((x, y))
    if not points:
        raise ValueError("no targets given")
    return points


def write_y4m(path: str | Path, targets: list[tuple[float, float]], *, seconds: float = 3.0,
              seed: int = 0, screen: tuple[int, int] = (1280, 720), mm_per_px: float = 0.25) -> dict:
    """Write the video: each target held for an equal share of `seconds`. Returns a summary."""
    session = VirtualVolunteer(seed).session(screen=screen, mm_per_px=mm_per_px, fps=FPS, blink_rate=0.0,
                                             inattentive_rate=0.0, no_face_rate=0.0)
    frames = max(1, round(seconds * FPS))
    width, height = session.camera.width, session.camera.height
    with open(path, "wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F{FPS}:1 Ip A1:1 C420jpeg\n".encode())
        for index in range(frames):
            target = targets[min(index * len(targets) // frames, len(targets) - 1)]
            rgb, _ = session.render(target, index=index)
            out.write(b"FRAME\n")
            out.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420).tobytes())
    return {"path": str(path), "frames": frames, "fps": FPS, "width": width, "height": height,
            "targets": [[round(x, 1), round(y, 1)] for x, y in targets], "seed": seed,
            "screen": list(screen)}


def read_y4m(path: str | Path) -> tuple[dict, list]:
    """The header fields and the frames as (480, 640, 3) RGB arrays (for tests and checks)."""
    import numpy as np
    data = Path(path).read_bytes()
    header, _, body = data.partition(b"\n")
    fields = dict((token[:1].decode(), token[1:].decode()) for token in header.split()[1:])
    width, height = int(fields["W"]), int(fields["H"])
    size = width * height * 3 // 2
    frames, offset = [], 0
    while offset < len(body):
        if body[offset:offset + 6] != b"FRAME\n":
            raise ValueError(f"bad frame marker at byte {offset}")
        plane = np.frombuffer(body, np.uint8, size, offset + 6).reshape(height * 3 // 2, width)
        frames.append(cv2.cvtColor(plane, cv2.COLOR_YUV2RGB_I420))
        offset += 6 + size
    return {"header": header.decode(), **fields}, frames
