"""A PNG contact sheet of the rendering styles as the extraction sees them.

One row per style (the held-out style labelled), each tile a frame with the crops the
extraction cut from it (face_aligned, l_eye, r_eye), for several volunteers, gaze targets
and head poses: the picture to look at after changing the simulator.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from simulator.face import PORTRAITS
from simulator.styles import HELD_OUT_STYLE, STYLES
from simulator.volunteer import VirtualVolunteer

TILE_HEIGHT = 180
CROP = 90
TILES_PER_ROW = 4
# (target as fractions of the screen, forced head pose or None for the drawn one)
SHOTS = (((0.1, 0.1), None), ((0.9, 0.9), None), ((0.5, 0.5), (-20.0, 5.0, 0.0)), ((0.2, 0.8), (15.0, -8.0, 6.0)))


def build_contact_sheet(path: str | Path, seed: int = 0) -> Path:
    """Write the sheet to `path` (PNG) and return the path."""
    from gazelab.config import load_config
    config = load_config()
    rows = [_style_row(name, seed, config) for name in STYLES]
    width = max(row.shape[1] for row in rows)
    sheet = np.vstack([np.pad(row, ((0, 0), (0, width - row.shape[1]), (0, 0))) for row in rows])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}")
    return path


def _style_row(name: str, seed: int, config) -> np.ndarray:
    tiles = []
    for k, (fraction, pose) in enumerate(SHOTS[:TILES_PER_ROW]):
        volunteer = _volunteer_with(PORTRAITS[k % len(PORTRAITS)], seed * 1000 + 50 * k + _style_number(name), name)
        session = volunteer.session(blink_rate=0.0, inattentive_rate=0.0, no_face_rate=0.0)
        target = (fraction[0] * session.screen[0], fraction[1] * session.screen[1])
        tiles.append(_tile(session, target, pose, config))
    label = name + ("  (HELD OUT)" if name == HELD_OUT_STYLE else "")
    banner = np.full((24, sum(t.shape[1] for t in tiles), 3), 40, np.uint8)
    cv2.putText(banner, label, (6, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.55,
                (255, 200, 80) if name == HELD_OUT_STYLE else (255, 255, 255), 1, cv2.LINE_AA)
    return np.vstack([banner, np.hstack(tiles)])


def _volunteer_with(portrait: str, first_seed: int, style: str) -> VirtualVolunteer:
    """The first volunteer from `first_seed` on whose face is `portrait`: every row shows both."""
    for seed in range(first_seed, first_seed + 30):
        volunteer = VirtualVolunteer(seed, style=style)
        if volunteer.portrait.source == portrait:
            return volunteer
    return volunteer


def _style_number(name: str) -> int:
    """A stable small number per style (Python's hash() differs between processes)."""
    return sum(ord(c) * (i + 1) for i, c in enumerate(name)) % 997


def _tile(session, target, pose, config) -> np.ndarray:
    """The frame (captioned) beside face_aligned over the two eye crops."""
    from collection.extraction import extract
    jpeg, truth = session.frame(target, index=0, pose=pose)
    rgb = cv2.cvtColor(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    result = extract(jpeg, config)
    frame_width = int(round(TILE_HEIGHT * rgb.shape[1] / rgb.shape[0]))
    frame = cv2.resize(rgb, (frame_width, TILE_HEIGHT), interpolation=cv2.INTER_AREA)
    crops = np.zeros((TILE_HEIGHT, CROP * 2, 3), np.uint8)
    if result.features is not None:
        f = result.features
        face, left, right = (cv2.resize(c, (CROP, CROP), interpolation=cv2.INTER_AREA)
                             for c in (f.face_aligned, f.l_eye, f.r_eye))
        crops[:CROP, CROP // 2:CROP // 2 + CROP] = face
        crops[CROP:, :CROP], crops[CROP:, CROP:] = left, right
    w, h = truth.frame_size
    lines = [f"{result.status} {','.join(result.reasons)}".strip(),
             f"{w}x{h} fov {2 * np.degrees(np.arctan(w / 2 / truth.focal_px)):.0f}deg",
             f"{session.display.diagonal_inches:.0f}in at {session.distance_mm / 10:.0f}cm",
             f"head {truth.yaw:+.0f} {truth.pitch:+.0f} {truth.roll:+.0f}"
             f"  gaze {truth.gaze_yaw_in_head:+.0f} {truth.gaze_pitch_in_head:+.0f}"]
    caption_top = TILE_HEIGHT - 14 * len(lines) - 4
    frame[caption_top:] = (frame[caption_top:] * 0.4).astype(np.uint8)
    for i, line in enumerate(lines):
        cv2.putText(frame, line, (4, caption_top + 12 + 14 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.37,
                    (255, 255, 255), 1, cv2.LINE_AA)
    return np.pad(np.hstack([frame, crops]), ((2, 2), (2, 2), (0, 0)))
