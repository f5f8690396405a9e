"""Real test pictures built from scikit-image's public-domain photographs.

`astronaut()` is a real face (Eileen Collins). `frame()` places it into a 640x480 webcam-
like frame; the other helpers derive the variants the extraction tests need. All return
(H, W, 3) uint8 RGB arrays; `jpeg()` / `png()` encode them like a browser upload.
"""
from __future__ import annotations

import functools

import cv2
import numpy as np
from skimage import data

FRAME_SIZE = (640, 480)            # width, height of a webcam frame
BACKGROUND = (96, 104, 112)        # a grey-blue wall
PORTRAIT_TOP, PORTRAIT_LEFT, PORTRAIT_SIDE = 0, 97, 256   # her face box is ~(179, 71, 92, 106)


@functools.lru_cache(maxsize=1)
def _astronaut() -> np.ndarray:
    return data.astronaut()


def astronaut() -> np.ndarray:
    """The 512x512 astronaut photograph (a copy; safe to modify)."""
    return _astronaut().copy()


def portrait() -> np.ndarray:
    """A 256x256 head-and-shoulders crop of the astronaut (face about 40% of its height)."""
    return astronaut()[PORTRAIT_TOP:PORTRAIT_TOP + PORTRAIT_SIDE, PORTRAIT_LEFT:PORTRAIT_LEFT + PORTRAIT_SIDE]


def coffee() -> np.ndarray:
    """A photograph with no face in it (400x600)."""
    return data.coffee()


def frame(scale: float = 1.0, dx: int = 0, dy: int = 0, size: tuple[int, int] = FRAME_SIZE,
          photo: np.ndarray | None = None) -> np.ndarray:
    """A webcam-like frame: the portrait scaled to `scale` x frame height, centred + (dx, dy).

    At scale 1 the face box is about 170 x 200 px (a volunteer ~50 cm from a laptop camera).
    """
    width, height = size
    photo = portrait() if photo is None else photo
    side = max(1, int(round(height * scale)))
    scaled = cv2.resize(photo, (side, side), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    canvas = np.empty((height, width, 3), np.uint8)
    canvas[:] = BACKGROUND
    return paste(canvas, scaled, (width - side) // 2 + dx, (height - side) // 2 + dy)


def paste(canvas: np.ndarray, picture: np.ndarray, x: int, y: int) -> np.ndarray:
    """`picture` with its top-left corner at (x, y) on `canvas`, clipped to the canvas."""
    height, width = canvas.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + picture.shape[1], width), min(y + picture.shape[0], height)
    if x1 > x0 and y1 > y0:
        canvas[y0:y1, x0:x1] = picture[y0 - y:y1 - y, x0 - x:x1 - x]
    return canvas


def rotated(picture: np.ndarray, degrees: float) -> np.ndarray:
    """Rotated about the centre; positive = counter-clockwise on screen (OpenCV's convention)."""
    height, width = picture.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    return cv2.warpAffine(picture, matrix, (width, height), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


def mirrored(picture: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(picture[:, ::-1])


def shifted(picture: np.ndarray, dx: int, dy: int = 0) -> np.ndarray:
    """Moved by (dx, dy) px; the uncovered part is the wall colour."""
    canvas = np.empty_like(picture)
    canvas[:] = BACKGROUND
    return paste(canvas, picture, dx, dy)


def two_faces(size: tuple[int, int] = FRAME_SIZE) -> np.ndarray:
    """Two copies of the portrait side by side in one frame."""
    width, height = size
    half = cv2.resize(portrait(), (width // 2, width // 2), interpolation=cv2.INTER_AREA)
    canvas = np.empty((height, width, 3), np.uint8)
    canvas[:] = BACKGROUND
    top = (height - half.shape[0]) // 2
    paste(canvas, half, 0, top)
    return paste(canvas, half, width // 2, top)


def darkened(picture: np.ndarray, factor: float = 0.12) -> np.ndarray:
    return np.clip(picture.astype(np.float32) * factor, 0, 255).astype(np.uint8)


def blurred(picture: np.ndarray, sigma: float = 6.0) -> np.ndarray:
    return cv2.GaussianBlur(picture, (0, 0), sigma)


def jpeg(picture: np.ndarray, quality: int = 90) -> bytes:
    ok, buffer = cv2.imencode(".jpg", _bgr(picture), [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return buffer.tobytes()


def png(picture: np.ndarray) -> bytes:
    ok, buffer = cv2.imencode(".png", _bgr(picture))
    assert ok
    return buffer.tobytes()


def _bgr(picture: np.ndarray) -> np.ndarray:
    if picture.ndim == 2:
        return picture
    code = cv2.COLOR_RGBA2BGRA if picture.shape[2] == 4 else cv2.COLOR_RGB2BGR
    return cv2.cvtColor(picture, code)
