"""Image codec: safe decoding of uploaded frames, and the encoding and the one decoder of
stored crops.

Frames: header checks first, then a bounded decode.

`decode_frame` never raises: it returns an RGB uint8 array or a `BadImage` with words
for the volunteer. The size is read from the header (a JPEG's by `jpeg_frame_header`, others by
Pillow, which parses lazily) and checked
against `max_pixels` before any pixel is decoded, so a 60000 x 60000 header in a 100-byte
file costs nothing. Only colour JPEG, PNG and WebP are accepted; an alpha channel is
accepted only when every pixel is opaque (a canvas PNG), never a transparent one.
"""
from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP")
COLOUR_MODES = ("RGB", "RGBA", "YCbCr", "P")
JPEG_END_MARKER = b"\xff\xd9"
# JPEG markers: the start-of-frame ones (SOF0-SOF15 but DHT, JPG and DAC), which hold the
# size, and those without a length field (TEM, RST0-RST7).
JPEG_FRAME_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
JPEG_BARE_MARKERS = frozenset([0x01, *range(0xD0, 0xD8)])
JPEG_SCAN_OR_END = (0xDA, 0xD9)


@dataclass(frozen=True)
class BadImage:
    message: str


def read_header(data: bytes, max_pixels: int, min_side: int) -> tuple[int, int] | BadImage:
    """(width, height) from the header, or why the image is refused before decoding."""
    if not data:
        return BadImage("The picture is empty.")
    if data[:3] == b"\xff\xd8\xff":
        frame = jpeg_frame_header(data)
        if frame is not None:
            width, height, components = frame
            return _checked_size(width, height, max_pixels, min_side, colour=components == 3)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                image_format, mode, (width, height) = image.format, image.mode, image.size
                has_palette_alpha = mode == "P" and "transparency" in image.info
    except Image.DecompressionBombError:   # Pillow's own limit, far above max_pixels
        return BadImage("The picture is too large.")
    except UnidentifiedImageError:
        return BadImage("This is not a picture we can read.")
    except Exception:  # Pillow raises many kinds on corrupt headers
        return BadImage("The picture is damaged.")
    if image_format not in ACCEPTED_FORMATS:
        return BadImage(f"Please send a JPEG or PNG picture, not {image_format}.")
    return _checked_size(width, height, max_pixels, min_side,
                         colour=mode in COLOUR_MODES and not has_palette_alpha)


def _checked_size(width: int, height: int, max_pixels: int, min_side: int, *,
                  colour: bool) -> tuple[int, int] | BadImage:
    if width * height > max_pixels:
        return BadImage(f"The picture is too large ({width}x{height}).")
    if min(width, height) < min_side:
        return BadImage(f"The picture is too small ({width}x{height}).")
    if not colour:
        return BadImage("Please send a colour picture without transparency.")
    return width, height


def jpeg_frame_header(data: bytes) -> tuple[int, int, int] | None:
    """(width, height, colour components) from a JPEG's frame header, found by walking its
    marker segments; None where the walk does not reach one cleanly (Pillow then decides).

    Every uploaded frame is a JPEG: Pillow's parse of its header (tables included) cost
    ~0.2 ms a frame, as much as all our crops' resizing. The decode is still checked against
    this size, so a header that lies gets the picture refused, never a wrong-sized frame."""
    position, end = 2, len(data)
    while position + 4 <= end:
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:                      # a fill byte before the marker
            position += 1
            continue
        if marker in JPEG_BARE_MARKERS:
            position += 2
            continue
        if marker in JPEG_SCAN_OR_END:          # pixels (or the end) before any frame header
            return None
        length = int.from_bytes(data[position + 2:position + 4], "big")
        if marker in JPEG_FRAME_MARKERS:
            if length < 8 or position + 10 > end:
                return None
            height = int.from_bytes(data[position + 5:position + 7], "big")
            width = int.from_bytes(data[position + 7:position + 9], "big")
            components = data[position + 9]
            return (width, height, components) if height and components in (1, 3, 4) else None
        if length < 2:
            return None
        position += 2 + length
    return None


def decode_frame(data: bytes, max_pixels: int, min_side: int) -> np.ndarray | BadImage:
    """Decode bytes to an (H, W, 3) uint8 RGB array, or say why not."""
    header = read_header(data, max_pixels, min_side)
    if isinstance(header, BadImage):
        return header
    if data[:2] == b"\xff\xd8" and JPEG_END_MARKER not in data[-64:]:
        return BadImage("The picture is incomplete (truncated).")
    try:
        pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error:
        pixels = None
    if pixels is None or pixels.dtype != np.uint8 or pixels.shape[1::-1] != header:
        return BadImage("The picture is damaged.")
    return _to_rgb(pixels)


def _to_rgb(pixels: np.ndarray) -> np.ndarray | BadImage:
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    if channels == 3:
        return cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)
    if channels == 4:
        if pixels[:, :, 3].min() < 255:
            return BadImage("Please send a colour picture without transparency.")
        return cv2.cvtColor(pixels, cv2.COLOR_BGRA2RGB)
    return BadImage("Please send a colour picture.")


# ---------------------------------------------------------------- stored crops

def encode_crops(crops: dict[str, np.ndarray], crop_format: str, jpeg_quality: int) -> dict[str, bytes]:
    """Crops (RGB (S,S,3) or grey (S,S) uint8) encoded as `crop_format` (jpeg | png)."""
    if crop_format == "png":
        extension, params = ".png", [cv2.IMWRITE_PNG_COMPRESSION, 3]
    else:
        extension, params = ".jpg", [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality]
    encoded = {}
    for name, pixels in crops.items():
        if pixels.ndim == 3:
            pixels = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
        ok, buffer = cv2.imencode(extension, pixels, params)
        if not ok:
            raise ValueError(f"could not encode crop {name}")
        encoded[name] = buffer.tobytes()
    return encoded


def decode_crop(data: bytes, grey: bool | None = None, size: int | None = None) -> np.ndarray:
    """A stored crop back to pixels: (S, S, 3) RGB or (S, S) grey uint8, as stored unless
    `grey` asks for one of them; resized to `size` x `size` when given and different.
    Raises ValueError if the bytes are not a readable image."""
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if pixels is None:
        raise ValueError("not a readable crop image")
    if pixels.ndim == 3 and pixels.shape[2] == 4:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_BGRA2BGR)
    if pixels.ndim == 3:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_BGR2GRAY if grey else cv2.COLOR_BGR2RGB)
    elif grey is False:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_GRAY2RGB)
    if size is not None and pixels.shape[:2] != (size, size):
        pixels = cv2.resize(pixels, (size, size), interpolation=cv2.INTER_AREA)
    return pixels


def crop_as_jpeg(data: bytes, crop_format: str, quality: int = 95) -> bytes:
    """A stored crop as JPEG bytes (unchanged when it is stored as JPEG already)."""
    if crop_format != "png":
        return data
    pixels = decode_crop(data)
    if pixels.ndim == 3:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
    return cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes()


# ---------------------------------------------------------------- stored landmarks

LANDMARK_SCALE = 8  # int16 of frame px x 8: 1/8 px resolution, frames up to 4095 px


def encode_landmarks(landmarks: np.ndarray) -> bytes:
    """(478, 2) frame px → compact bytes (little-endian int16 of px x LANDMARK_SCALE)."""
    scaled = np.clip(np.round(np.asarray(landmarks, np.float64) * LANDMARK_SCALE), -32768, 32767)
    return scaled.astype("<i2").tobytes()


def decode_landmarks(data: bytes) -> np.ndarray:
    """Stored landmark bytes back to (478, 2) float32 frame px."""
    return (np.frombuffer(data, "<i2").reshape(-1, 2).astype(np.float32) / LANDMARK_SCALE)
