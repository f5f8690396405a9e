"""Base faces: the scikit-image astronaut photograph and per-volunteer identity variations.

The photograph is upscaled (so the eyes can be repainted with detail), its face landmarks
are found once per process with the same detector the extraction uses, and each virtual
volunteer gets a variant: mirrored or not, skin and hair colour shifted, a different crop of
the photo over a blurred, out-of-focus surround, and a different physical face size.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

UPSCALE = 2                  # eyes are ~18 px wide in the 512 px photo; paint them at 2x
PAD = 420                    # blurred surround around the photo, portrait px
MEAN_EYE_DISTANCE_MM = 63.0  # adult interpupillary distance

# Face Mesh indices (person's right eye = image left in the photograph).
EYES = {
    "right": {"corners": (33, 133), "upper": (246, 161, 160, 159, 158, 157, 173),
              "lower": (7, 163, 144, 145, 153, 154, 155), "iris": 468, "iris_ring": (469, 470, 471, 472)},
    "left": {"corners": (263, 362), "upper": (466, 388, 387, 386, 385, 384, 398),
             "lower": (249, 390, 373, 374, 380, 381, 382), "iris": 473, "iris_ring": (474, 475, 476, 477)},
}
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400,
             377, 152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)


@dataclass
class EyeShape:
    """One eye of a portrait, in portrait px."""
    corners: np.ndarray      # (2, 2) outer, inner
    upper: np.ndarray        # (7, 2) upper lid, outer -> inner
    lower: np.ndarray        # (7, 2) lower lid, outer -> inner
    iris: np.ndarray         # (2,) iris centre when looking along the face normal
    iris_radius: float
    skin: np.ndarray         # (3,) float RGB of the lid/cheek skin around this eye


@dataclass
class Portrait:
    """A volunteer's face photo, padded, with what the renderer needs to know about it."""
    image: np.ndarray        # (H, W, 3) uint8 RGB
    eyes: list[EyeShape]     # image-left eye first
    centre: np.ndarray       # (2,) point between the iris centres, portrait px
    mm_per_px: float         # physical size of a portrait pixel on the face plane
    level: np.ndarray        # (2, 2) rotation that makes the photo's eye line horizontal
    face_box: tuple[int, int, int, int]  # x0, y0, x1, y1 portrait px

    def face_mm(self, points_px: np.ndarray) -> np.ndarray:
        """(N, 2) portrait px -> (N, 3) face-frame mm (origin between the eyes, x along the eye line)."""
        xy = (np.atleast_2d(points_px) - self.centre) @ self.level.T * self.mm_per_px
        return np.hstack([xy, np.zeros((len(xy), 1))])

    def shift_px(self, shift_mm: tuple[float, float]) -> np.ndarray:
        """A face-plane displacement (mm) as a portrait-px displacement."""
        return np.asarray(shift_mm) @ self.level / self.mm_per_px


@lru_cache(maxsize=1)
def astronaut() -> tuple[np.ndarray, np.ndarray]:
    """The upscaled photograph (RGB) and its (478, 2) landmarks; computed once per process."""
    import skimage.data
    from collection.extraction import detect_landmarks
    photo = skimage.data.astronaut()
    faces = detect_landmarks(photo)
    if len(faces) != 1:
        raise RuntimeError(f"expected one face in the astronaut photograph, found {len(faces)}")
    big = cv2.resize(photo, None, fx=UPSCALE, fy=UPSCALE, interpolation=cv2.INTER_CUBIC)
    return big, (faces[0].astype(np.float64) + 0.5) * UPSCALE - 0.5


def make_portrait(rng: np.random.Generator) -> Portrait:
    """A new identity drawn from `rng`."""
    photo, landmarks = astronaut()
    photo, landmarks = photo.copy(), landmarks.copy()
    if rng.random() < 0.5:
        photo = np.ascontiguousarray(photo[:, ::-1])
        landmarks[:, 0] = photo.shape[1] - 1 - landmarks[:, 0]
    photo = _shift_colours(photo, landmarks, rng)
    image, landmarks = _crop_and_pad(photo, landmarks, rng)
    eyes = sorted((_eye_shape(image, landmarks, spec) for spec in EYES.values()),
                  key=lambda eye: eye.iris[0])
    centre = (eyes[0].iris + eyes[1].iris) / 2
    eye_line = eyes[1].iris - eyes[0].iris
    eye_distance_px = float(np.linalg.norm(eye_line))
    cos, sin = eye_line / eye_distance_px
    level = np.array([[cos, sin], [-sin, cos]])
    eye_distance_mm = rng.normal(MEAN_EYE_DISTANCE_MM, 3.0)
    oval = landmarks[list(FACE_OVAL)]
    x0, y0 = oval.min(axis=0)
    x1, y1 = oval.max(axis=0)
    return Portrait(image, eyes, centre, eye_distance_mm / eye_distance_px, level,
                    (int(x0), int(y0), int(x1), int(y1)))


def _face_mask(shape: tuple[int, int], landmarks: np.ndarray, feather: float) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [np.round(landmarks[list(FACE_OVAL)]).astype(np.int32)], 255)
    return cv2.GaussianBlur(mask, (0, 0), feather).astype(np.float32) / 255


def _shift_colours(photo: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Skin tone (inside the face oval) and hair colour (dark-ish pixels around the head)."""
    lab = cv2.cvtColor(photo, cv2.COLOR_RGB2LAB).astype(np.float32)
    face = _face_mask(photo.shape[:2], landmarks, 6)
    skin_shift = np.array([rng.uniform(-45, 12), rng.uniform(-4, 8), rng.uniform(-6, 10)], np.float32)
    lab += face[..., None] * skin_shift

    oval = landmarks[list(FACE_OVAL)]
    centre = oval.mean(axis=0)
    half = (oval.max(axis=0) - oval.min(axis=0)) / 2
    head = np.zeros(photo.shape[:2], np.uint8)
    cv2.ellipse(head, (int(centre[0]), int(centre[1] - 0.25 * half[1])),
                (int(1.45 * half[0]), int(1.4 * half[1])), 0, 0, 360, 255, -1)
    hair = cv2.GaussianBlur(head, (0, 0), 10).astype(np.float32) / 255 * (1 - face)
    darkness, tint = rng.uniform(0.35, 1.1), rng.normal(0, 8, 2)
    lab[..., 0] = lab[..., 0] * (1 - hair) + lab[..., 0] * darkness * hair
    lab[..., 1:] += hair[..., None] * tint.astype(np.float32)
    return cv2.cvtColor(np.clip(lab, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)


def _crop_and_pad(photo: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator):
    """Keep a random window of the photo around the face; outside it a blurred surround."""
    height, width = photo.shape[:2]
    oval = landmarks[list(FACE_OVAL)]
    (fx0, fy0), (fx1, fy1) = oval.min(axis=0), oval.max(axis=0)
    face_w = fx1 - fx0
    x0 = int(np.clip(fx0 - rng.uniform(0.6, 3.0) * face_w, 0, width))
    x1 = int(np.clip(fx1 + rng.uniform(0.6, 3.0) * face_w, 0, width))
    y0 = int(np.clip(fy0 - rng.uniform(0.5, 2.0) * face_w, 0, height))
    y1 = height
    window = photo[y0:y1, x0:x1]
    small = cv2.resize(window, None, fx=0.125, fy=0.125, interpolation=cv2.INTER_AREA)
    pad_small = PAD // 8
    surround = cv2.copyMakeBorder(small, pad_small, pad_small, pad_small, pad_small, cv2.BORDER_REPLICATE)
    surround = cv2.GaussianBlur(surround, (0, 0), 6)
    size = (window.shape[1] + 2 * PAD, window.shape[0] + 2 * PAD)
    image = cv2.resize(surround, size, interpolation=cv2.INTER_LINEAR)
    # blend the sharp window into the blurred surround with a soft edge
    alpha = np.zeros(image.shape[:2], np.float32)
    alpha[PAD:PAD + window.shape[0], PAD:PAD + window.shape[1]] = 1
    alpha = cv2.GaussianBlur(alpha, (0, 0), 12)[..., None]
    sharp = image.copy()
    sharp[PAD:PAD + window.shape[0], PAD:PAD + window.shape[1]] = window
    image = (sharp * alpha + image * (1 - alpha)).astype(np.uint8)
    return image, landmarks - (x0, y0) + PAD


def _eye_shape(image: np.ndarray, landmarks: np.ndarray, spec: dict) -> EyeShape:
    corners = landmarks[list(spec["corners"])]
    upper, lower = landmarks[list(spec["upper"])], landmarks[list(spec["lower"])]
    iris = landmarks[spec["iris"]]
    radius = float(np.linalg.norm(landmarks[list(spec["iris_ring"])] - iris, axis=1).mean())
    width = float(np.linalg.norm(corners[0] - corners[1]))
    # skin: a band just below the lower lid (cheek), away from lashes
    below = lower.mean(axis=0) + (0, 0.35 * width)
    x, y, r = int(below[0]), int(below[1]), max(2, int(0.15 * width))
    skin = np.median(image[y - r:y + r, x - 2 * r:x + 2 * r].reshape(-1, 3), axis=0).astype(np.float32)
    return EyeShape(corners, upper, lower, iris, radius, skin)
