"""The virtual volunteer: webcam frames of a real face looking at a known point on a screen.

    volunteer = VirtualVolunteer(seed=3)
    session = volunteer.session(screen=(1920, 1080), mm_per_px=0.26)
    jpeg, truth = session.frame((400, 300))      # truth.target, truth.gaze_yaw, truth.blink, ...

Everything is deterministic: a volunteer is fixed by its seed, a session by (seed, session
number) and a frame by (seed, session number, frame index) -- so frames may be rendered
out of order or in other processes (`session.frame(target, index=i)`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from simulator import geometry
from simulator.face import Portrait, make_portrait
from simulator.geometry import Camera, HeadPose
from simulator.render import CameraLook, EyeLook, Sensor, paint_eye

IRIS_COLOURS = np.array([(92, 58, 38), (60, 38, 26), (120, 84, 52), (82, 110, 140),
                         (96, 120, 96), (110, 110, 112)], np.float32)
# Upper-lid movement with vertical gaze: closure per unit sin(pitch in head), and its range.
LID_FOLLOW = 0.5
LID_RANGE = (-0.2, 0.3)
LOWER_LID_FOLLOW = 0.3
# Part of a gaze shift the head makes (yaw, pitch): ranges per session.
HEAD_FOLLOW = ((0.1, 0.3), (0.25, 0.45))
# Slow drift of the head (per session, sums of sinusoids) and frame-to-frame jitter.
DRIFT = {"yaw": 3.0, "pitch": 2.5, "roll": 2.0, "x": 25.0, "y": 15.0, "z": 35.0}
JITTER = {"yaw": 0.6, "pitch": 0.6, "roll": 0.4, "x": 2.0, "y": 2.0, "z": 4.0}


@dataclass
class Truth:
    """What really happened in one simulated frame (angles in degrees, collection.extraction signs)."""
    index: int
    target: tuple[float, float]           # the dot, CSS px
    looked_at: tuple[float, float]        # where the eyes point (differs when inattentive)
    gaze_yaw: float                       # camera frame, mean of both eyes
    gaze_pitch: float
    gaze_yaw_in_head: float               # relative to the head: what moves the iris
    gaze_pitch_in_head: float
    yaw: float                            # head pose
    pitch: float
    roll: float                           # eye-line angle in the frame (as extraction defines it)
    head_mm: tuple[float, float, float]   # point between the eyes, camera frame
    eyes_px: tuple[tuple[float, float], tuple[float, float]]  # image-left, image-right eye centre
    blink: bool = False
    inattentive: bool = False
    no_face: bool = False


class VirtualVolunteer:
    """One simulated person: a face identity and eye colours drawn from `seed`."""

    def __init__(self, seed: int):
        self.seed = int(seed)
        rng = np.random.default_rng([self.seed, 0])
        self.portrait: Portrait = make_portrait(rng)
        iris = IRIS_COLOURS[rng.integers(len(IRIS_COLOURS))] * rng.uniform(0.8, 1.15, 3)
        sclera = (np.array([222, 214, 206], np.float32) * 0.55 + self.portrait.eyes[0].skin * 0.45) \
            * rng.uniform(1.0, 1.12)
        self.eye_look = EyeLook(iris=np.clip(iris, 0, 255).astype(np.float32),
                                sclera=np.clip(sclera, 0, 255).astype(np.float32))
        self._sessions = 0

    def session(self, screen: tuple[int, int] = (1920, 1080), mm_per_px: float = 0.27, *,
                number: int | None = None, fps: float = 5.0, blink_rate: float = 0.04,
                inattentive_rate: float = 0.03, no_face_rate: float = 0.02) -> "VirtualSession":
        """A sitting in front of `screen` (CSS px, `mm_per_px` mm each); numbered 1, 2, ..."""
        if number is None:
            self._sessions += 1
            number = self._sessions
        return VirtualSession(self, number, screen, mm_per_px, fps=fps, blink_rate=blink_rate,
                              inattentive_rate=inattentive_rate, no_face_rate=no_face_rate)


@dataclass
class _Wave:
    amplitude: float
    period: float
    phase: float

    def __call__(self, t: float) -> float:
        return self.amplitude * math.sin(2 * math.pi * t / self.period + self.phase)


@dataclass
class VirtualSession:
    volunteer: VirtualVolunteer
    number: int
    screen: tuple[int, int]
    mm_per_px: float
    fps: float = 5.0
    blink_rate: float = 0.04
    inattentive_rate: float = 0.03
    no_face_rate: float = 0.02
    camera: Camera = field(default_factory=Camera)

    def __post_init__(self) -> None:
        rng = np.random.default_rng([self.volunteer.seed, self.number])
        self.distance_mm = rng.uniform(450, 700)
        # where the face sits in the picture, and the pose the volunteer settles in
        self.face_pixel = (rng.uniform(250, 390), rng.uniform(190, 290))
        self.base_pose = {"yaw": rng.uniform(-6, 6), "pitch": rng.uniform(-4, 6), "roll": rng.uniform(-7, 7)}
        self.head_follow = (rng.uniform(*HEAD_FOLLOW[0]), rng.uniform(*HEAD_FOLLOW[1]))
        self.drift = {name: [_Wave(rng.uniform(0.3, 1) * amplitude, rng.uniform(6, 40), rng.uniform(0, 2 * np.pi))
                             for _ in range(2)] for name, amplitude in DRIFT.items()}
        self.gain_drift = _Wave(rng.uniform(0.02, 0.08), rng.uniform(10, 60), rng.uniform(0, 2 * np.pi))
        self.sensor = Sensor(CameraLook.draw(rng), (self.camera.width, self.camera.height), rng)
        portrait = self.volunteer.portrait
        self._work = portrait.image.copy()   # the portrait with this frame's eyes painted in
        self._next_index = 0

    # ------------------------------------------------------------ public

    def frame(self, target: tuple[float, float], index: int | None = None,
              inattentive: bool | None = None) -> tuple[bytes, Truth]:
        """One JPEG webcam frame (640x480) of the volunteer looking at `target` (CSS px).

        index: the frame number (default: the one after the last); inattentive: force the
        volunteer to look elsewhere (True) or at the target (False); None draws it.
        """
        rgb, truth, rng = self._render(target, index, inattentive)
        return self.sensor.encode(rgb, int(rng.integers(-3, 4))), truth

    def render(self, target: tuple[float, float], index: int | None = None,
               inattentive: bool | None = None) -> tuple[np.ndarray, Truth]:
        """Like `frame`, but the (480, 640, 3) uint8 RGB picture, before JPEG encoding."""
        rgb, truth, _ = self._render(target, index, inattentive)
        return rgb, truth

    # ------------------------------------------------------------ steps

    def _render(self, target, index, inattentive):
        if index is None:
            index = self._next_index
        self._next_index = index + 1
        rng = np.random.default_rng([self.volunteer.seed, self.number, index, 1])
        t = index / self.fps
        no_face = rng.random() < self.no_face_rate
        blink = not no_face and rng.random() < self.blink_rate
        drawn = rng.random() < self.inattentive_rate
        inattentive = not no_face and (drawn if inattentive is None else inattentive)
        looked_at = self._random_point(rng) if inattentive else (float(target[0]), float(target[1]))

        target_mm = geometry.screen_point_mm(looked_at, self.screen, self.mm_per_px)
        pose = self._pose(t, rng, no_face, target_mm)
        portrait = self.volunteer.portrait
        eyes_mm = pose.to_camera(portrait.face_mm(np.array([eye.iris for eye in portrait.eyes])))
        gazes = [geometry.eye_gaze(eye_mm, target_mm, pose) for eye_mm in eyes_mm]
        for eye, gaze in zip(portrait.eyes, gazes):
            down = -math.sin(math.radians(gaze.pitch_in_head))
            closure = rng.uniform(0.97, 1.0) if blink else float(np.clip(LID_FOLLOW * down, *LID_RANGE))
            paint_eye(self._work, portrait.image, eye, eye.iris + portrait.shift_px(gaze.iris_shift_mm),
                      closure, self.volunteer.eye_look, lower_drop=max(0.0, LOWER_LID_FOLLOW * down))

        picture = cv2.warpPerspective(self._work, self._homography(pose), (self.camera.width, self.camera.height),
                                      flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        picture = self.sensor.expose(picture, 1 + self.gain_drift(t), rng)
        eyes_px = self.camera.project(eyes_mm)
        (lx, ly), (rx, ry) = eyes_px
        truth = Truth(
            index=index, target=(float(target[0]), float(target[1])), looked_at=looked_at,
            gaze_yaw=float(np.mean([g.yaw for g in gazes])), gaze_pitch=float(np.mean([g.pitch for g in gazes])),
            gaze_yaw_in_head=float(np.mean([g.yaw_in_head for g in gazes])),
            gaze_pitch_in_head=float(np.mean([g.pitch_in_head for g in gazes])),
            yaw=pose.yaw, pitch=pose.pitch, roll=math.degrees(math.atan2(ry - ly, rx - lx)),
            head_mm=tuple(float(v) for v in pose.centre),
            eyes_px=((float(lx), float(ly)), (float(rx), float(ry))),
            blink=blink, inattentive=inattentive, no_face=no_face)
        return picture, truth, rng

    def _random_point(self, rng: np.random.Generator) -> tuple[float, float]:
        """Somewhere on or around the screen: where an inattentive volunteer looks."""
        width, height = self.screen
        return float(rng.uniform(-0.2, 1.2) * width), float(rng.uniform(-0.2, 1.2) * height)

    def _pose(self, t: float, rng: np.random.Generator, no_face: bool, target_mm: np.ndarray) -> HeadPose:
        def value(name: str) -> float:
            return sum(wave(t) for wave in self.drift[name]) + rng.normal(0, JITTER[name])

        depth = self.distance_mm + value("z")
        centre = self.camera.unproject(self.face_pixel, depth) + (value("x"), value("y"), 0)
        # the head turns part of the way toward what the eyes look at
        toward_yaw, toward_pitch = geometry.direction_angles(target_mm - centre)
        if no_face:  # leaned far out of the picture
            centre[0] += math.copysign(1.1 * depth, rng.uniform(-1, 1))
        return HeadPose(yaw=self.base_pose["yaw"] + self.head_follow[0] * toward_yaw + value("yaw"),
                        pitch=self.base_pose["pitch"] + self.head_follow[1] * toward_pitch + value("pitch"),
                        roll=self.base_pose["roll"] + value("roll"), centre=centre)

    def _homography(self, pose: HeadPose) -> np.ndarray:
        """Portrait px -> frame px for the face plane in this pose."""
        portrait = self.volunteer.portrait
        x0, y0, x1, y1 = portrait.face_box
        corners = np.array([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], np.float64)
        projected = self.camera.project(pose.to_camera(portrait.face_mm(corners)))
        return cv2.getPerspectiveTransform(corners.astype(np.float32), projected.astype(np.float32))
