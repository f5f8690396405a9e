"""Base faces: real photographs turned into textured 3-D heads, and per-volunteer identities.

Two public-domain portraits ship with the installed libraries: scikit-image's astronaut
and matplotlib's Grace Hopper. Each is scaled so its eyes are ~86 px apart (room to repaint
them with detail), and Face Mesh (with depth) and selfie segmentation run on it once per
process. The photo's own head pose is measured against MediaPipe's canonical face
(collection.extraction's model points) and becomes the "zero" pose of the face frame.

Each virtual volunteer gets a variant: a portrait, mirrored or not, skin and hair colour
shifted, facial hair, glasses, age marks, its own eye shape, a different crop of the photo
over a blurred surround, and a different physical face size (simulator.identity paints
the decorations; glasses are a 3-D object drawn into each frame, simulator.glasses).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from simulator import glasses, identity
from simulator.glasses import Glasses

PORTRAITS = ("astronaut", "grace_hopper")
WEARS_GLASSES = ("grace_hopper",)   # no second pair drawn over these
EYE_DISTANCE_PX = 86.0       # iris centres apart in every portrait after scaling
PAD = 420                    # blurred surround around the photo, portrait px
MEAN_EYE_DISTANCE_MM = 63.0  # adult interpupillary distance
# Rings of vertices around the face oval that carry hair, ears and jaw line with the head:
# (how far out from the face centre, as a fraction of the oval's radius; how far back, mm).
# Receding more looks rounder but reads, through Face Mesh, as a head turned up when it turns.
RINGS = ((0.22, 8.0), (0.5, 20.0))
FACE_SIDES = (234, 454)      # the face oval's widest points, by the ears
TEMPLE_REACH_MM = RINGS[-1][1]   # glasses' temples end behind them, where the head's outer ring lies

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
    """One eye of a portrait, in portrait px: the volunteer's shape and the photo's."""
    corners: np.ndarray      # (2, 2) outer, inner
    upper: np.ndarray        # (7, 2) upper lid, outer -> inner
    lower: np.ndarray        # (7, 2) lower lid, outer -> inner
    iris: np.ndarray         # (2,) iris centre in the photograph
    iris_radius: float
    skin: np.ndarray         # (3,) float RGB of the lid/cheek skin around this eye
    photo_upper: np.ndarray  # the photograph's lids: repainted over even where the shape changed
    photo_lower: np.ndarray


@dataclass
class Portrait:
    """A volunteer's face texture with its 3-D landmarks and the face frame.

    Photo axes: x right, y down (portrait px), z away from the photographer (px, Face Mesh's
    depth at the same scale). Face frame: mm, origin between the iris centres, axes of the
    frontal head (collection.extraction's canonical face: x right, y down, z into the head).
    """
    image: np.ndarray        # (H, W, 3) uint8 RGB
    person: np.ndarray       # (H, W) float32: 1 on the person, 0 on the background
    face_alpha: np.ndarray   # (H, W) float32: 1 inside the inner ring, feathered to 0 at the outer
    vertices: np.ndarray     # (478, 3) landmarks, photo axes
    ring: np.ndarray         # (len(RINGS) * len(FACE_OVAL), 3) photo points around the face
    eyes: list[EyeShape]     # image-left eye first
    centre: np.ndarray       # (3,) between the iris centres, photo axes
    to_face: np.ndarray      # (3, 3) photo axes -> face frame rotation
    mm_per_px: float
    plane_depth: float       # photo z of the plane that carries hair, ears and background
    face_box: tuple[int, int, int, int]  # x0, y0, x1, y1 portrait px
    source: str
    glasses: Glasses | None = None

    def face_mm(self, points: np.ndarray) -> np.ndarray:
        """(N, 2) portrait px (on the surround plane) or (N, 3) photo points -> face-frame mm."""
        points = np.atleast_2d(np.asarray(points, np.float64))
        if points.shape[1] == 2:
            points = np.hstack([points, np.full((len(points), 1), self.plane_depth)])
        return (points - self.centre) @ self.to_face.T * self.mm_per_px

    def to_photo(self, face_mm: np.ndarray) -> np.ndarray:
        """(N, 3) face-frame mm -> (N, 3) photo points (x, y portrait px)."""
        return np.atleast_2d(face_mm) / self.mm_per_px @ self.to_face + self.centre

    @property
    def photo_axis_mm(self) -> np.ndarray:
        """Unit face-frame direction from the photographer into the head (photo +z)."""
        return self.to_face[:, 2]


@dataclass
class BasePhoto:
    image: np.ndarray        # scaled RGB
    person: np.ndarray       # float32 mask
    vertices: np.ndarray     # (478, 3) photo axes, px


@lru_cache(maxsize=None)
def base_photo(name: str) -> BasePhoto:
    """A portrait scaled to EYE_DISTANCE_PX, its 3-D landmarks and person mask; once per process."""
    photo = _load(name)
    vertices = landmarks_3d(photo)
    scale = EYE_DISTANCE_PX / float(np.linalg.norm(vertices[473, :2] - vertices[468, :2]))
    big = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    person = cv2.resize(_person_mask(photo), (big.shape[1], big.shape[0]), interpolation=cv2.INTER_LINEAR)
    return BasePhoto(big, person, (vertices + (0.5, 0.5, 0)) * scale - (0.5, 0.5, 0))


def _load(name: str) -> np.ndarray:
    if name == "astronaut":
        import skimage.data
        return skimage.data.astronaut()
    if name == "grace_hopper":
        import matplotlib.cbook
        with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as file:
            data = np.frombuffer(file.read(), np.uint8)
        return cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    raise ValueError(f"unknown portrait {name!r}")


def landmarks_3d(rgb: np.ndarray) -> np.ndarray:
    """(478, 3) Face Mesh landmarks: x, y in px, z (depth, away from the camera) at the x scale."""
    import mediapipe as mp
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=2,
                                         refine_landmarks=True) as mesh:
        faces = mesh.process(np.ascontiguousarray(rgb)).multi_face_landmarks or []
    if len(faces) != 1:
        raise RuntimeError(f"expected one face in the portrait, found {len(faces)}")
    height, width = rgb.shape[:2]
    points = np.array([(p.x, p.y, p.z) for p in faces[0].landmark], np.float64)
    return points * (width, height, width)


def _person_mask(rgb: np.ndarray) -> np.ndarray:
    import mediapipe as mp
    with mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0) as segmentation:
        mask = segmentation.process(np.ascontiguousarray(rgb)).segmentation_mask
    return cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 2)


def photo_rotation(vertices: np.ndarray) -> tuple[np.ndarray, float]:
    """Rotation photo axes -> canonical frontal face, and the factor Face Mesh's depth needs.

    A similarity (Umeyama) fit of the pose landmarks to collection.extraction's canonical
    face, with the photo's depth scaled by the factor that fits best: Face Mesh's z is only
    roughly at the x scale, and a head too flat or too deep turns wrongly under solvePnP.
    """
    from collection.extraction import FACE_MODEL_3D, POSE_LANDMARKS
    target = FACE_MODEL_3D - FACE_MODEL_3D.mean(axis=0)
    best = None
    for depth_scale in np.linspace(0.6, 2.5, 39):
        source = vertices[list(POSE_LANDMARKS)] * (1, 1, depth_scale)
        source = source - source.mean(axis=0)
        u, singular, vt = np.linalg.svd(target.T @ source)
        d = np.sign(np.linalg.det(u @ vt))
        rotation = u @ np.diag([1, 1, d]) @ vt
        scale = (singular * (1, 1, d)).sum() / (source ** 2).sum()
        residual = float(((target - scale * source @ rotation.T) ** 2).sum())
        if best is None or residual < best[0]:
            best = (residual, rotation, float(depth_scale))
    return best[1], best[2]


def make_portrait(rng: np.random.Generator) -> Portrait:
    """A new identity drawn from `rng`."""
    name = PORTRAITS[int(rng.integers(len(PORTRAITS)))]
    base = base_photo(name)
    photo, person, vertices = base.image.copy(), base.person.copy(), base.vertices.copy()
    to_face, depth_scale = photo_rotation(vertices)
    vertices[:, 2] *= depth_scale
    if rng.random() < 0.5:
        photo, person = np.ascontiguousarray(photo[:, ::-1]), np.ascontiguousarray(person[:, ::-1])
        vertices[:, 0] = photo.shape[1] - 1 - vertices[:, 0]
        flip = np.diag([-1.0, 1.0, 1.0])
        to_face = flip @ to_face @ flip
    photo = _shift_colours(photo, person, vertices[:, :2], rng)
    image, person, offset = _crop_and_pad(photo, person, vertices[:, :2], rng)
    vertices[:, :2] += offset
    eyes = sorted((_eye_shape(image, vertices[:, :2], spec, rng) for spec in EYES.values()),
                  key=lambda eye: eye.iris[0])
    centre = (vertices[468] + vertices[473]) / 2
    eye_distance_mm = rng.normal(MEAN_EYE_DISTANCE_MM, 3.0)
    eye_distance = float(np.linalg.norm(((vertices[473] - vertices[468]) @ to_face.T)))
    oval = vertices[list(FACE_OVAL)]
    x0, y0 = oval[:, :2].min(axis=0)
    x1, y1 = oval[:, :2].max(axis=0)
    wears_glasses = identity.decorate(image, vertices[:, :2], eyes, FACE_OVAL, rng,
                                      photo_has_glasses=name in WEARS_GLASSES)
    mm_per_px = eye_distance_mm / eye_distance
    ring = surround_ring(oval, mm_per_px)
    portrait = Portrait(image, person, _face_alpha(image.shape[:2], ring), vertices, ring, eyes, centre,
                        to_face, mm_per_px, float(np.median(ring[-len(FACE_OVAL):, 2])),
                        (int(x0), int(y0), int(x1), int(y1)), name)
    if wears_glasses:
        portrait.glasses = _glasses(portrait, rng)
    return portrait


def _glasses(portrait: Portrait, rng: np.random.Generator) -> Glasses:
    """A pair sized to the eyes, its temples reaching the sides of the head (simulator.glasses)."""
    def face_mm(indices) -> np.ndarray:
        return portrait.face_mm(portrait.vertices[list(indices)])
    corners = [face_mm(spec["corners"]) for spec in EYES.values()]
    centres = sorted((pair.mean(axis=0) for pair in corners), key=lambda point: point[0])
    width = float(np.mean([np.linalg.norm(pair[1] - pair[0]) for pair in corners]))
    ears = sorted(face_mm(FACE_SIDES), key=lambda point: point[0])
    return glasses.make(rng, np.array(centres), width, np.array(ears) + (0, 0, TEMPLE_REACH_MM))


def surround_ring(oval: np.ndarray, mm_per_px: float) -> np.ndarray:
    """Photo points on rings around the face oval, receding like the sides of a head."""
    centre = oval[:, :2].mean(axis=0)
    rings = []
    for outward, back_mm in RINGS:
        xy = centre + (oval[:, :2] - centre) * (1 + outward)
        rings.append(np.hstack([xy, oval[:, 2:] + back_mm / mm_per_px]))
    return np.vstack(rings)


def _face_alpha(shape: tuple[int, int], ring: np.ndarray) -> np.ndarray:
    """1 inside the inner ring, falling to 0 at the outer one: where the 3-D head covers the surround."""
    inner, outer = ring[:len(FACE_OVAL), :2], ring[-len(FACE_OVAL):, :2]
    feather = float(np.median(np.linalg.norm(outer - inner, axis=1)))
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [np.round(outer).astype(np.int32)], 255)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (int(feather) | 1,) * 2)
    return cv2.GaussianBlur(cv2.erode(mask, kernel), (0, 0), feather / 4).astype(np.float32) / 255


def _face_mask(shape: tuple[int, int], landmarks: np.ndarray, feather: float) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [np.round(landmarks[list(FACE_OVAL)]).astype(np.int32)], 255)
    return cv2.GaussianBlur(mask, (0, 0), feather).astype(np.float32) / 255


def _shift_colours(photo: np.ndarray, person: np.ndarray, landmarks: np.ndarray,
                   rng: np.random.Generator) -> np.ndarray:
    """Skin tone (the face and skin-coloured parts of the person: neck, ears) and hair colour."""
    lab = cv2.cvtColor(photo, cv2.COLOR_RGB2LAB).astype(np.float32)
    face = _face_mask(photo.shape[:2], landmarks, 6)
    skin = _skin_mask(lab, face, person)
    skin_shift = np.array([rng.uniform(-45, 12), rng.uniform(-4, 8), rng.uniform(-6, 10)], np.float32)
    lab += skin[..., None] * skin_shift

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


def _skin_mask(lab: np.ndarray, face: np.ndarray, person: np.ndarray) -> np.ndarray:
    """The face oval, and pixels of the person whose colour is close to the face's skin."""
    inside = face > 0.9
    reference = np.median(lab[inside][:, 1:], axis=0)
    distance = np.linalg.norm(lab[..., 1:] - reference, axis=2)
    similar = np.exp(-(distance / 7.0) ** 2) * (lab[..., 0] > 40)
    similar = cv2.GaussianBlur(similar.astype(np.float32), (0, 0), 3) * np.clip(person * 1.5, 0, 1)
    return np.maximum(face, similar)


def _crop_and_pad(photo: np.ndarray, person: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator):
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
    person = cv2.copyMakeBorder(person[y0:y1, x0:x1], PAD, PAD, PAD, PAD, cv2.BORDER_REPLICATE)
    return image, person, np.array([PAD - x0, PAD - y0], np.float64)


def _eye_shape(image: np.ndarray, landmarks: np.ndarray, spec: dict, rng: np.random.Generator) -> EyeShape:
    corners = landmarks[list(spec["corners"])]
    upper, lower = landmarks[list(spec["upper"])], landmarks[list(spec["lower"])]
    iris = landmarks[spec["iris"]]
    radius = float(np.linalg.norm(landmarks[list(spec["iris_ring"])] - iris, axis=1).mean())
    width = float(np.linalg.norm(corners[0] - corners[1]))
    # skin: a band just below the lower lid (cheek), away from lashes
    below = lower.mean(axis=0) + (0, 0.35 * width)
    x, y, r = int(below[0]), int(below[1]), max(2, int(0.15 * width))
    skin = np.median(image[y - r:y + r, x - 2 * r:x + 2 * r].reshape(-1, 3), axis=0).astype(np.float32)
    new_corners, new_upper, new_lower = _reshape_eye(corners, upper, lower, rng)
    return EyeShape(new_corners, new_upper, new_lower, iris, radius * rng.uniform(0.92, 1.1), skin,
                    upper, lower)


def _reshape_eye(corners, upper, lower, rng: np.random.Generator):
    """The volunteer's own eye: opening and width scaled about the eye's centre line."""
    opening, width = rng.uniform(0.9, 1.35), rng.uniform(0.93, 1.07)
    centre = corners.mean(axis=0)
    axis = (corners[1] - corners[0]) / np.linalg.norm(corners[1] - corners[0])
    normal = np.array([-axis[1], axis[0]])

    def scaled(points: np.ndarray) -> np.ndarray:
        along, across = (points - centre) @ axis, (points - centre) @ normal
        return centre + np.outer(along * width, axis) + np.outer(across * opening, normal)
    return scaled(corners), scaled(upper), scaled(lower)
