"""Face feature extraction from one webcam frame (MediaPipe Face Mesh with iris + OpenCV).

`extract(jpeg_bytes, config)` returns an `Extraction`: accepted with `Features`, or rejected
with reason codes (see REASONS) and a message for the volunteer. It never raises.

Conventions (the same everywhere in GazeLab):
- **Left/right are the person's.** `l_eye` is the person's left eye, which lies on the
  image's RIGHT side in an ordinary (not mirrored) webcam frame. A mirrored frame therefore
  gives eye crops that are horizontal flips of the other eye's crop in the unmirrored frame.
- Image coordinates: x to the right, y down, in frame pixels.
- **roll**: angle of the line from the image-left eye centre to the image-right eye centre,
  `atan2(dy, dx)` in degrees (the reference project's `head_angle`); positive when the line
  turns clockwise on screen, i.e. the head tilts toward the person's left shoulder.
- **yaw**: positive when the nose points toward the image's right side (the person turns to
  their left in an unmirrored frame). **pitch**: positive when the face points up.
  Both from `cv2.solvePnP` of ten landmarks against MediaPipe's canonical 3D face, with a
  pinhole camera of focal length = frame width; they are relative to the camera axis, so a
  frontal-looking face high in the frame reads as pitched down (it faces the camera).
- Crops are `image_size` square RGB uint8: `face` (axis-aligned square around the face box,
  side = longer box side x face_margin), `face_aligned` (rotated and scaled so both eye
  centres land on fixed points of a level line), `l_eye`/`r_eye` (axis-aligned squares
  centred on the eye-corner midpoint, side = corner distance x eye_margin), `head_pos`
  (single channel: the frame squeezed to image_size x image_size, white, face box black).
- Measures: `face_fraction` is face box area / frame area; `cut_off` is the part of the face
  box area outside the frame; `sharpness` is the variance of the Laplacian of the grey face
  crop resampled to SHARPNESS_SIDE px; `brightness` the mean grey level (0..255) of that crop;
  iris positions are normalised within their eye crop (0..1, 0.5 = centre).

FaceMesh graphs are made lazily in the process that uses them, one per frame in flight
(MediaPipe graphs do not survive fork; a graph runs one frame at a time).
`static_image_mode=True`: every frame is independent (frames of different volunteers
interleave in one worker), and tracking mode measured no faster here.
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
from dataclasses import dataclass
from typing import Iterator

import cv2
import numpy as np

from collection.codec import BadImage, decode_frame, encode_crops, encode_landmarks
from gazelab.schema import CROP_KINDS

log = logging.getLogger(__name__)

REASONS = ("no_face", "multiple_faces", "face_too_small", "face_cut_off", "eyes_closed",
           "too_blurry", "too_dark", "bad_image")
MESSAGES = {
    "no_face": "We can't see a face",
    "multiple_faces": "We see two faces",
    "face_too_small": "Move closer",
    "face_cut_off": "Move into the middle of the picture",
    "eyes_closed": "We can't see your eyes",
    "too_blurry": "Hold still, the picture is blurry",
    "too_dark": "Too dark, please turn on a light",
}
ACCEPTED_MESSAGE = "Face found"

# Face Mesh landmark indices (person's left/right).
RIGHT_EYE_CORNERS = (33, 133)         # outer, inner
LEFT_EYE_CORNERS = (263, 362)         # outer, inner
RIGHT_EYE_LIDS = ((160, 144), (158, 153))   # (upper, lower) pairs for the eye aspect ratio
LEFT_EYE_LIDS = ((385, 380), (387, 373))
RIGHT_IRIS, LEFT_IRIS = 468, 473

# Points of MediaPipe's canonical face model (canonical_face_model.obj; cm, origin at the
# nose tip) in camera axes (x right, y down, z away from the camera), for cv2.solvePnP.
# Mirror pairs share |x|. Chin, forehead and nose bridge pin down pitch.
FACE_MODEL_POINTS = {
    1: (0.0, 0.0, 0.0),                          # nose tip
    152: (0.0, 8.276513, 3.211112),              # chin
    10: (0.0, -9.388643, 2.994069),              # top of forehead
    168: (0.0, -4.397892, 2.239589),             # nose bridge
    33: (-4.445859, -3.790856, 4.302182),        # person's right eye, outer corner
    263: (4.445859, -3.790856, 4.302182),        # person's left eye, outer corner
    133: (-1.856432, -3.712110, 3.717700),       # inner corners
    362: (1.856432, -3.712110, 3.717700),
    61: (-2.456206, 3.215756, 3.191720),         # mouth corners
    291: (2.456206, 3.215756, 3.191720),
}
POSE_LANDMARKS = tuple(FACE_MODEL_POINTS)
_POSE_INDEX = np.array(POSE_LANDMARKS)
FACE_MODEL_3D = np.array(list(FACE_MODEL_POINTS.values()), dtype=np.float64)
MODEL_EYE_DISTANCE = 2 * 4.445859

# face_aligned: eye centres at these fractions of the crop side.
ALIGNED_EYE_Y, ALIGNED_EYE_X_LEFT, ALIGNED_EYE_X_RIGHT = 0.40, 0.30, 0.70
SHARPNESS_SIDE = 96
# Levenberg-Marquardt from the guess in head_yaw_pitch: 10 iterations land within 0.01 deg
# of 20 (measured on 40 faces) at half the cost; each costs ~8 us.
PNP_CRITERIA = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_COUNT, 10, 1e-7)


@dataclass
class Features:
    """Crops are (S, S, 3) uint8 RGB except head_pos (S, S); S = config.collection.image_size."""
    face: np.ndarray
    face_aligned: np.ndarray
    l_eye: np.ndarray
    r_eye: np.ndarray
    head_pos: np.ndarray
    yaw: float
    pitch: float
    roll: float
    face_box: tuple[float, float, float, float]
    frame_size: tuple[int, int]
    measures: dict[str, float]
    landmarks: np.ndarray       # (478, 2) float32 frame px


@dataclass
class Extraction:
    """status "accepted" | "rejected"; features whenever exactly one face was found."""
    status: str
    reasons: list[str]
    message: str
    features: Features | None

    @property
    def accepted(self) -> bool:
        return self.status == "accepted"


def _rejected(reason: str, message: str | None = None, features: Features | None = None) -> Extraction:
    return Extraction("rejected", [reason], message or MESSAGES[reason], features)


# ---------------------------------------------------------------- detector

_idle_graphs: list = []              # this process's FaceMeshes not in use (last returned, first lent)
_graphs_lock = threading.Lock()
_graph_pid: int | None = None       # the process that made the first FaceMesh


@contextlib.contextmanager
def face_mesh() -> Iterator:
    """A FaceMesh (a `_FaceMesh`) of this process for the caller's use, made when none is free
    (~30 MB and a second of CPU each) and kept for the next caller.

    One graph per frame in flight, not one per process behind a lock: a graph takes one frame
    at a time, and with one graph the web process's second thread spent about a quarter of its
    time waiting for it while the CPU stood partly idle. Graphs are lent, not tied to threads:
    a graph held by a thread-local outlived its thread (MediaPipe keeps it alive), so threads
    that come and go would each have leaked one.

    MediaPipe does not survive fork: a child forked after its parent ran a FaceMesh crashes
    (SIGSEGV/SIGABRT) when it runs one, even a new one. Such a child gets an error instead.
    """
    global _graph_pid
    with _graphs_lock:
        if _graph_pid is not None and _graph_pid != os.getpid():
            raise RuntimeError(f"MediaPipe was started in process {_graph_pid} before it forked "
                               f"this one ({os.getpid()}); start it only in the process that uses it")
        mesh = _idle_graphs.pop() if _idle_graphs else None
        _graph_pid = os.getpid()
    if mesh is None:
        mesh = _face_mesh_class()(static_image_mode=True, max_num_faces=2, refine_landmarks=True)
    try:
        yield mesh
    finally:
        with _graphs_lock:
            _idle_graphs.append(mesh)


def _face_mesh_class():
    """MediaPipe's FaceMesh with `serialised_faces`, a leaner run of the same graph (mediapipe
    is pinned to one version: it reads what SolutionBase.process reads)."""
    from mediapipe.python import packet_creator
    from mediapipe.python._framework_bindings import image_frame
    from mediapipe.python._framework_bindings import _packet_getter as native_getter
    from mediapipe.python.solutions.face_mesh import FaceMesh

    class _FaceMesh(FaceMesh):
        def serialised_faces(self, rgb: np.ndarray) -> list[bytes]:
            """Each face's NormalizedLandmarkList as the graph serialised it. `process` does
            the same run but then builds a namedtuple class and parses every face into
            Python messages — ~0.25 ms a frame, a fifth of our own work beside Face Mesh."""
            self._graph_outputs.clear()
            self._simulated_timestamp += 33333
            frame = packet_creator.create_image(rgb, image_format=image_frame.ImageFormat.SRGB)
            self._graph.add_packet_to_input_stream(stream="image", packet=frame.at(self._simulated_timestamp))
            self._graph.wait_until_idle()
            output = self._graph_outputs.get("multi_face_landmarks")
            if output is None or output.is_empty():
                return []
            return list(native_getter._get_serialized_proto_list(output))

    return _FaceMesh


# A serialised NormalizedLandmark as Face Mesh writes it: (tag, length, tag, x, tag, y, tag, z).
_LANDMARK_RECORD = np.dtype([("tag", "u1"), ("length", "u1"), ("x_tag", "u1"), ("x", "<f4"),
                             ("y_tag", "u1"), ("y", "<f4"), ("z_tag", "u1"), ("z", "<f4")])
_LANDMARK_TAGS = np.array([0x0A, _LANDMARK_RECORD.itemsize - 2, 0x0D, 0x15, 0x1D], np.uint8)
_LANDMARK_TAG_OFFSETS = [_LANDMARK_RECORD.fields[name][1] for name in ("tag", "length", "x_tag", "y_tag", "z_tag")]
_X_OFFSET, _Y_OFFSET = _LANDMARK_RECORD.fields["x"][1], _LANDMARK_RECORD.fields["y"][1]


def _landmark_array(data: bytes, scale: tuple[float, float]) -> np.ndarray:
    """(n, 2) float32 x, y of a serialised NormalizedLandmarkList, times `scale` (frame px).

    Reading 478 protobuf messages field by field costs ~0.25 ms a frame; the serialised
    bytes are fixed-size records NumPy reads at once. Any other layout (a field added, a
    default left out) is parsed and read field by field."""
    scale = np.array(scale, dtype=np.float32)
    size = _LANDMARK_RECORD.itemsize
    if len(data) % size == 0:
        count = len(data) // size
        records = np.frombuffer(data, np.uint8).reshape(count, size)
        if (records[:, _LANDMARK_TAG_OFFSETS] == _LANDMARK_TAGS).all():
            xy = np.ndarray((count, 2), "<f4", data, _X_OFFSET, (size, _Y_OFFSET - _X_OFFSET))
            return xy * scale
    from mediapipe.framework.formats.landmark_pb2 import NormalizedLandmarkList
    face = NormalizedLandmarkList.FromString(data)
    return np.array([(p.x, p.y) for p in face.landmark], dtype=np.float32).reshape(-1, 2) * scale


def detect_landmarks(rgb: np.ndarray) -> list[np.ndarray]:
    """(478, 2) float32 landmark arrays in frame pixels, one per face found (at most 2)."""
    height, width = rgb.shape[:2]
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError("Face Mesh takes three-channel RGB pictures")
    with face_mesh() as mesh:
        faces = mesh.serialised_faces(np.ascontiguousarray(rgb))
    return [_landmark_array(face, (width, height)) for face in faces]


# ---------------------------------------------------------------- entry points

def extract(data: bytes, config) -> Extraction:
    """Features of the one face in an encoded frame, or a rejection. Never raises."""
    try:
        rgb = decode_frame(data, config.extraction.max_pixels, config.extraction.min_side)
        if isinstance(rgb, BadImage):
            return _rejected("bad_image", rgb.message)
        return _extract_checked(rgb, config)
    except Exception:  # the verdict must always come back; the log keeps the cause
        log.exception("feature extraction failed")
        return _rejected("bad_image", "The picture could not be processed.")


def extract_rgb(rgb: np.ndarray, config) -> Extraction:
    """`extract` for an already decoded (H, W, 3) uint8 RGB array. Never raises."""
    try:
        problem = _check_array(rgb, config)
        if problem:
            return _rejected("bad_image", problem)
        return _extract_checked(rgb, config)
    except Exception:
        log.exception("feature extraction failed")
        return _rejected("bad_image", "The picture could not be processed.")


def _check_array(rgb, config) -> str | None:
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        return "Please send a colour picture."
    height, width = rgb.shape[:2]
    if width * height > config.extraction.max_pixels:
        return f"The picture is too large ({width}x{height})."
    if min(width, height) < config.extraction.min_side:
        return f"The picture is too small ({width}x{height})."
    return None


def _extract_checked(rgb: np.ndarray, config) -> Extraction:
    faces = detect_landmarks(rgb)
    if not faces:
        return _rejected("no_face")
    if len(faces) > 1:
        return _rejected("multiple_faces")
    features = compute_features(rgb, faces[0], config)
    reasons = quality_reasons(features.measures, config)
    if reasons:
        return Extraction("rejected", reasons, MESSAGES[reasons[0]], features)
    return Extraction("accepted", [], ACCEPTED_MESSAGE, features)


def quality_reasons(measures: dict[str, float], config) -> list[str]:
    """Reason codes for one found face, most actionable first."""
    limits = config.extraction
    checks = (
        ("face_too_small", measures["face_fraction"] < limits.min_face_fraction),
        ("face_cut_off", measures["cut_off"] > limits.max_cut_off),
        ("eyes_closed", (measures["ear_left"] + measures["ear_right"]) / 2 < limits.min_eye_aspect_ratio),
        ("too_dark", measures["brightness"] < limits.min_brightness),
        ("too_blurry", measures["sharpness"] < limits.min_sharpness),
    )
    return [reason for reason, failed in checks if failed]


# ---------------------------------------------------------------- features

def compute_features(rgb: np.ndarray, landmarks: np.ndarray, config) -> Features:
    """Crops, pose and measures for one face given its (478, 2) landmarks in pixels."""
    size = config.collection.image_size
    height, width = rgb.shape[:2]
    face_box = _face_box(landmarks)
    points = _measured_points(landmarks)
    left_centre, left_side = _eye_square(points, LEFT_EYE_CORNERS, config.extraction.eye_margin)
    right_centre, right_side = _eye_square(points, RIGHT_EYE_CORNERS, config.extraction.eye_margin)
    box_x, box_y, box_w, box_h = face_box
    face_centre = (box_x + box_w / 2, box_y + box_h / 2)
    face_side = max(box_w, box_h) * config.extraction.face_margin

    face = square_crop(rgb, face_centre, face_side, size)
    grey_face = grey_square_crop(rgb, face_centre, max(box_w, box_h), SHARPNESS_SIDE)
    roll = _roll_degrees(right_centre, left_centre)
    yaw, pitch = head_yaw_pitch(landmarks, (width, height))
    measures = {
        "ear_left": _eye_aspect_ratio(points, LEFT_EYE_CORNERS, LEFT_EYE_LIDS),
        "ear_right": _eye_aspect_ratio(points, RIGHT_EYE_CORNERS, RIGHT_EYE_LIDS),
        **_iris_measures("left", points[LEFT_IRIS], left_centre, left_side),
        **_iris_measures("right", points[RIGHT_IRIS], right_centre, right_side),
        "sharpness": _sharpness(grey_face),
        "brightness": float(cv2.mean(grey_face)[0]),
        "face_fraction": float(box_w * box_h / (width * height)),
        "cut_off": _outside_fraction(face_box, width, height),
    }
    return Features(
        face=face,
        face_aligned=aligned_face(rgb, right_centre, left_centre, size),
        l_eye=square_crop(rgb, left_centre, left_side, size),
        r_eye=square_crop(rgb, right_centre, right_side, size),
        head_pos=head_position_image(face_box, (width, height), size),
        yaw=yaw, pitch=pitch, roll=roll,
        face_box=face_box, frame_size=(width, height),
        measures=measures, landmarks=landmarks.astype(np.float32),
    )


def _sharpness(grey: np.ndarray) -> float:
    """Variance of the Laplacian (int16 holds a uint8 image's exactly; half the cost of float)."""
    _, std = cv2.meanStdDev(cv2.Laplacian(grey, cv2.CV_16S))
    return float(std[0, 0] ** 2)


def _face_box(landmarks: np.ndarray) -> tuple[float, float, float, float]:
    # cv2.minMaxLoc: a tenth of NumPy's min/max along axis 0 of a (478, 2) array
    x0, x1 = cv2.minMaxLoc(landmarks[:, 0])[:2]
    y0, y1 = cv2.minMaxLoc(landmarks[:, 1])[:2]
    return x0, y0, _float32(x1 - x0), _float32(y1 - y0)


def _float32(value: float) -> float:
    """`value` rounded as float32 arithmetic rounds it (the crops' geometry is float32's)."""
    return float(np.float32(value))


Point = tuple[float, float]
_MEASURED_LANDMARKS = sorted({*RIGHT_EYE_CORNERS, *LEFT_EYE_CORNERS, RIGHT_IRIS, LEFT_IRIS,
                              *(i for pair in RIGHT_EYE_LIDS + LEFT_EYE_LIDS for i in pair)})


def _measured_points(landmarks: np.ndarray) -> dict[int, Point]:
    """The landmarks the eye crops and measures use, as Python floats: on 2-vectors NumPy's
    per-call overhead (np.linalg.norm ~2 us) costs far more than the arithmetic."""
    return dict(zip(_MEASURED_LANDMARKS, map(tuple, landmarks[_MEASURED_LANDMARKS].tolist())))


def _distance(a: Point, b: Point) -> float:
    return math.hypot(a[0] - b[0], a[1] - b[1])


def _eye_square(points: dict[int, Point], corners: tuple[int, int], margin: float) -> tuple[Point, float]:
    (outer_x, outer_y), (inner_x, inner_y) = points[corners[0]], points[corners[1]]
    centre = ((outer_x + inner_x) / 2, (outer_y + inner_y) / 2)
    return centre, _distance(points[corners[0]], points[corners[1]]) * margin


def _eye_aspect_ratio(points: dict[int, Point], corners, lids) -> float:
    width = _distance(points[corners[0]], points[corners[1]])
    opening = sum(_distance(points[upper], points[lower]) for upper, lower in lids)
    return opening / (2 * width) if width > 0 else 0.0


def _iris_measures(which: str, iris: Point, centre: Point, side: float) -> dict[str, float]:
    return {f"iris_{which}_x": float((iris[0] - centre[0]) / side + 0.5),
            f"iris_{which}_y": float((iris[1] - centre[1]) / side + 0.5)}


def _roll_degrees(right_eye, left_eye) -> float:
    """Eye-line angle from the image-left eye to the image-right eye (clockwise positive)."""
    (x0, y0), (x1, y1) = sorted([right_eye, left_eye])
    return math.degrees(math.atan2(y1 - y0, x1 - x0))


def _outside_fraction(box, width: int, height: int) -> float:
    x, y, w, h = box
    if w <= 0 or h <= 0:
        return 1.0
    inside_w = max(0.0, min(x + w, width) - max(x, 0.0))
    inside_h = max(0.0, min(y + h, height) - max(y, 0.0))
    return float(1 - inside_w * inside_h / (w * h))


def head_yaw_pitch(landmarks: np.ndarray, frame_size: tuple[int, int]) -> tuple[float, float]:
    """Yaw and pitch in degrees (signs in the module docstring) from cv2.solvePnP."""
    width, height = frame_size
    focal = float(width)
    camera = np.array([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1]], dtype=np.float64)
    image_points = landmarks[_POSE_INDEX].astype(np.float64)
    left_outer, right_outer = landmarks[[LEFT_EYE_CORNERS[0], RIGHT_EYE_CORNERS[0]]].tolist()
    eye_distance = _distance(left_outer, right_outer) or 1.0
    # start facing the camera, the nose tip (the model's origin) where it is seen, at the
    # distance the eye corners' spacing gives
    depth = focal * MODEL_EYE_DISTANCE / eye_distance
    nose_x, nose_y = image_points[0]
    rvec = np.zeros((3, 1))
    tvec = np.array([[(nose_x - width / 2) * depth / focal], [(nose_y - height / 2) * depth / focal], [depth]])
    # solvePnP's iterative method from this guess is Levenberg-Marquardt; calling LM directly
    # gives the same pose at two thirds of the cost
    rvec, tvec = cv2.solvePnPRefineLM(FACE_MODEL_3D, image_points, camera, None, rvec, tvec, PNP_CRITERIA)
    if not np.isfinite(rvec).all():
        return 0.0, 0.0
    rotation, _ = cv2.Rodrigues(rvec)
    facing = rotation @ np.array([0.0, 0.0, -1.0])   # where the face points, camera frame
    yaw = math.degrees(math.atan2(facing[0], -facing[2]))
    pitch = math.degrees(math.atan2(-facing[1], math.hypot(facing[0], facing[2])))
    return yaw, pitch


# ---------------------------------------------------------------- crops

def _square_patch(image: np.ndarray, centre, side: float) -> np.ndarray:
    """The pixels of an axis-aligned square of `side` px around `centre`; outside = black."""
    half = max(side, 1.0) / 2
    x0, y0 = int(round(centre[0] - half)), int(round(centre[1] - half))
    x1, y1 = int(round(centre[0] + half)), int(round(centre[1] + half))
    height, width = image.shape[:2]
    patch = image[max(y0, 0):max(min(y1, height), 0), max(x0, 0):max(min(x1, width), 0)]
    pad = (max(-y0, 0), max(y1 - height, 0), max(-x0, 0), max(x1 - width, 0))
    if any(pad) or patch.size == 0:
        canvas = np.zeros((y1 - y0, x1 - x0) + image.shape[2:], dtype=image.dtype)
        if patch.size:
            canvas[pad[0]:pad[0] + patch.shape[0], pad[2]:pad[2] + patch.shape[1]] = patch
        patch = canvas
    return patch


def _resized(patch: np.ndarray, out_size: int) -> np.ndarray:
    """`patch` resized to out_size square. Shrinking by more than 2x, linear alone would
    alias: then linear to twice the size and an exact 2x area average (OpenCV's area
    filter for other factors costs ~0.12 ms a face crop; this ~0.04 ms, within a grey level
    or so of it)."""
    if patch.shape[0] > 2 * out_size:
        patch = cv2.resize(patch, (2 * out_size, 2 * out_size), interpolation=cv2.INTER_LINEAR)
        return cv2.resize(patch, (out_size, out_size), interpolation=cv2.INTER_AREA)
    return cv2.resize(patch, (out_size, out_size), interpolation=cv2.INTER_LINEAR)


def square_crop(rgb: np.ndarray, centre, side: float, out_size: int) -> np.ndarray:
    """Axis-aligned square of `side` px around `centre`, resized to out_size; outside = black."""
    return _resized(_square_patch(rgb, centre, side), out_size)


def grey_square_crop(rgb: np.ndarray, centre, side: float, out_size: int) -> np.ndarray:
    """square_crop in grey levels (made grey before resizing: a third of the pixels to resize)."""
    return _resized(cv2.cvtColor(_square_patch(rgb, centre, side), cv2.COLOR_RGB2GRAY), out_size)


def aligned_face(rgb: np.ndarray, right_eye, left_eye, out_size: int) -> np.ndarray:
    """Face rotated and scaled so the eye centres sit level at fixed points of the crop."""
    image_left, image_right = sorted([right_eye, left_eye])
    source = np.array([image_left, image_right], dtype=np.float32)
    target = np.array([(ALIGNED_EYE_X_LEFT * out_size, ALIGNED_EYE_Y * out_size),
                       (ALIGNED_EYE_X_RIGHT * out_size, ALIGNED_EYE_Y * out_size)], dtype=np.float32)
    matrix = _similarity_from_two_points(source, target)
    return cv2.warpAffine(rgb, matrix, (out_size, out_size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def _similarity_from_two_points(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    src_vec, dst_vec = source[1] - source[0], target[1] - target[0]
    scale = np.linalg.norm(dst_vec) / max(np.linalg.norm(src_vec), 1e-6)
    angle = math.atan2(dst_vec[1], dst_vec[0]) - math.atan2(src_vec[1], src_vec[0])
    cos, sin = scale * math.cos(angle), scale * math.sin(angle)
    rotation = np.array([[cos, -sin], [sin, cos]])
    offset = target[0] - rotation @ source[0]
    return np.hstack([rotation, offset[:, None]]).astype(np.float64)


def head_position_image(face_box, frame_size: tuple[int, int], out_size: int) -> np.ndarray:
    """The frame squeezed to out_size x out_size: white, with the face box black."""
    x, y, w, h = face_box
    width, height = frame_size
    image = np.full((out_size, out_size), 255, dtype=np.uint8)
    x0, x1 = (int(round(v * out_size / width)) for v in (x, x + w))
    y0, y1 = (int(round(v * out_size / height)) for v in (y, y + h))
    image[max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)] = 0
    return image


# ---------------------------------------------------------------- storage

def encode_features(features: Features, config) -> dict[str, bytes]:
    """The stored crops of `features`, encoded per [extraction] crop_format, and its landmarks."""
    crops = encode_crops({kind: getattr(features, kind) for kind in CROP_KINDS},
                         config.extraction.crop_format, config.extraction.crop_jpeg_quality)
    return {**crops, "landmarks": encode_landmarks(features.landmarks)}
