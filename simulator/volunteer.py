"""The virtual volunteer: webcam frames of a real face looking at a known point on a screen.

    volunteer = VirtualVolunteer(seed=3, style="office_webcam")
    session = volunteer.session()                 # screen, distance, webcam, light from the style
    jpeg, truth = session.frame((400, 300))      # truth.target, truth.gaze_direction, truth.blink, ...

A volunteer is a textured 3-D head (simulator.face, simulator.mesh) with its own identity
(portrait, skin, hair, facial hair, glasses, age marks, eye shape, iris) and eyeballs that
turn toward what they look at. A session places it before a screen and a webcam drawn from
its style (simulator.styles): screen size and resolution, viewing distance, the webcam's
frame size, field of view and place beside the picture, the room's light (direction, colour,
back-light; the head casts shadows) and the camera's exposure, white balance, blur, noise and JPEG. Each frame draws
the head's drift and jitter, blinks, inattention, motion blur and noise, and `Truth` records
what really happened, down to the 3-D gaze ray in camera-frame millimetres.

Everything is deterministic: a volunteer is fixed by its seed (and style), a session by
(seed, session number) and a frame by (seed, session number, frame index) -- so frames may
be rendered out of order or in other processes (`session.frame(target, index=i)`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from simulator import geometry, shadows
from simulator.face import FACE_OVAL, RINGS, Portrait, make_portrait
from simulator.geometry import Camera, HeadPose, Screen
from simulator.glasses import draw as draw_glasses
from simulator.lighting import Light, vertex_shade
from simulator.mesh import (HOLES, LANDMARKS, HeadMesh, canonical_morph, fan_triangles, rasterise, ring_triangles,
                            triangles)
from simulator.render import CameraLook, EyeLook, IrisView, Sensor, paint_eye
from simulator.styles import DEFAULT_STYLE, STYLES, Style

IRIS_COLOURS = np.array([(92, 58, 38), (60, 38, 26), (120, 84, 52), (82, 110, 140),
                         (96, 120, 96), (110, 110, 112), (70, 90, 120), (130, 100, 60)], np.float32)
# Upper-lid movement with vertical gaze: closure per unit sin(pitch in head), and its range.
LID_FOLLOW = 0.35
LID_RANGE = (-0.2, 0.3)
LOWER_LID_FOLLOW = 0.6
# Part of a gaze shift the head makes (yaw, pitch): ranges per session.
HEAD_FOLLOW = ((0.1, 0.3), (0.25, 0.45))
# Slow drift of the head (per session, sums of sinusoids) and frame-to-frame jitter.
DRIFT = {"yaw": 3.0, "pitch": 2.5, "roll": 2.0, "x": 25.0, "y": 15.0, "z": 35.0}
JITTER = {"yaw": 0.6, "pitch": 0.6, "roll": 0.4, "x": 2.0, "y": 2.0, "z": 4.0}
CORNEA_RADIUS_MM = 7.8
CORNEA_OFFSET_MM = 5.6         # eyeball centre to the cornea's centre of curvature
BACKLIGHT_BLOOM = 0.85         # how far a full back-light pushes the background toward white
# What the head's rasteriser interpolates per pixel (_draw_head), as columns of MeshRender.values:
# the light factor where lit and where shadowed, the place in the light's view (shadows.ShadowMap
# coordinates), the shadow test's bias, the camera z (mm).
LIT, SHADOWED, LIGHT_VIEW, BIAS, DEPTH = 0, 1, slice(2, 5), 5, 6


@dataclass
class Truth:
    """What really happened in one simulated frame (angles in degrees, collection.extraction signs).

    3-D quantities are in camera-frame mm (simulator.geometry: origin at the lens, x to the
    image's right, y down, z toward the volunteer; the screen's picture lies in the z = 0 plane).
    """
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
    head_mm: tuple[float, float, float]   # point between the eyes (iris centres in the photo pose)
    eyes_px: tuple[tuple[float, float], tuple[float, float]]  # image-left, image-right iris centre
    blink: bool = False
    inattentive: bool = False
    no_face: bool = False
    gaze_origin_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)   # midpoint of the eyeball centres
    gaze_direction: tuple[float, float, float] = (0.0, 0.0, -1.0)  # unit, from the origin to looked_at_mm
    looked_at_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)     # looked_at on the screen (z = 0)
    screen_mm: tuple[float, float] = (0.0, 0.0)                    # the picture's width, height
    camera_offset_mm: tuple[float, float] = (0.0, 0.0)             # lens from the picture's top centre
    focal_px: float = 0.0
    frame_size: tuple[int, int] = (0, 0)
    style: str = ""


class VirtualVolunteer:
    """One simulated person: a face identity and eyes drawn from `seed`, and the style they sit in."""

    def __init__(self, seed: int, style: str = DEFAULT_STYLE):
        if style not in STYLES:
            raise ValueError(f"unknown style {style!r}; known: {', '.join(STYLES)}")
        self.seed = int(seed)
        self.style: Style = STYLES[style]
        rng = np.random.default_rng([self.seed, 0])
        self.portrait: Portrait = make_portrait(rng)
        iris = IRIS_COLOURS[rng.integers(len(IRIS_COLOURS))] * rng.uniform(0.75, 1.2, 3)
        sclera = (np.array([226, 220, 212], np.float32) * 0.8 + self.portrait.eyes[0].skin * 0.2) \
            * rng.uniform(0.95, 1.08)
        self.eye_look = EyeLook.draw(rng, np.clip(iris, 0, 255).astype(np.float32),
                                     np.clip(sclera, 0, 255).astype(np.float32))
        portrait = self.portrait
        self.head, morph = _head_mesh(portrait)
        iris_ids = [_iris_landmark(portrait, eye) for eye in portrait.eyes]
        # the eyeballs sit where the morphed head shows the eyes; `eye_shift_mm` leads back to the texture
        self.eye_shift_mm = morph[iris_ids]
        self.eyeballs_mm = self.head.vertices_mm[iris_ids] + geometry.EYEBALL_RADIUS_MM * portrait.photo_axis_mm
        self.photo_gaze_down = -float(portrait.photo_axis_mm[1])   # -sin(pitch in head) of a gaze at the photographer
        self._sessions = 0

    def session(self, screen: tuple[int, int] | None = None, mm_per_px: float | None = None, *,
                number: int | None = None, fps: float = 5.0, blink_rate: float = 0.04,
                inattentive_rate: float = 0.03, no_face_rate: float = 0.02, camera: Camera | None = None,
                frame_size: tuple[int, int] | None = None, distance_mm: float | None = None) -> "VirtualSession":
        """A sitting in front of `screen` (CSS px, `mm_per_px` mm each); numbered 1, 2, ...

        What is not given is drawn from the volunteer's style: the screen, the viewing
        distance, the webcam (`frame_size` keeps its drawn field of view at another size).
        """
        if number is None:
            self._sessions += 1
            number = self._sessions
        return VirtualSession(self, number, screen, mm_per_px, fps=fps, blink_rate=blink_rate,
                              inattentive_rate=inattentive_rate, no_face_rate=no_face_rate, camera=camera,
                              frame_size=frame_size, distance_mm=distance_mm)


def _head_mesh(portrait: Portrait) -> tuple[HeadMesh, np.ndarray]:
    """The face mesh, its eye and mouth holes closed, rings around it, morphed (see canonical_morph);
    and the morph's (N, 3) displacements of its vertices (the landmarks first)."""
    photo = [portrait.vertices, portrait.ring]
    tris = [triangles(), ring_triangles(FACE_OVAL, LANDMARKS, len(RINGS))]
    first_added = LANDMARKS + len(portrait.ring)
    for centre, loop in HOLES:
        if centre is None:
            centre = first_added + len(photo) - 2
            photo.append(portrait.vertices[list(loop)].mean(axis=0, keepdims=True))
        tris.append(fan_triangles(centre, loop))
    surface = np.vstack(photo)
    shape = portrait.face_mm(surface)
    morph = canonical_morph(shape)
    return HeadMesh.build(shape + morph, surface[:, :2], np.vstack(tris)), morph


def _iris_landmark(portrait: Portrait, eye) -> int:
    """The Face Mesh index of an eye's iris centre."""
    distances = np.linalg.norm(portrait.vertices[[468, 473], :2] - eye.iris, axis=1)
    return [468, 473][int(np.argmin(distances))]


@dataclass
class _Wave:
    amplitude: float
    period: float
    phase: float

    def __call__(self, t: float) -> float:
        return self.amplitude * math.sin(2 * math.pi * t / self.period + self.phase)


@dataclass
class VirtualSession:
    """A sitting: the screen (`display`: CSS size, mm per CSS px, the webcam's place beside it),
    the viewing distance, the webcam (`camera`, `sensor`), the room's `light`, and how the
    head settles, drifts and follows the gaze -- each drawn from the volunteer's style unless given."""
    volunteer: VirtualVolunteer
    number: int
    screen: tuple[int, int] | None = None
    mm_per_px: float | None = None
    fps: float = 5.0
    blink_rate: float = 0.04
    inattentive_rate: float = 0.03
    no_face_rate: float = 0.02
    camera: Camera | None = None
    frame_size: tuple[int, int] | None = None
    distance_mm: float | None = None
    display: Screen = field(init=False)

    def __post_init__(self) -> None:
        rng = np.random.default_rng([self.volunteer.seed, self.number])
        style = self.volunteer.style
        self.display = self._screen(style, rng)
        self.screen, self.mm_per_px = self.display.size_px, self.display.mm_per_px
        drawn_camera = style.draw_camera(rng)
        if self.frame_size is not None:
            drawn_camera = Camera.from_fov(tuple(self.frame_size), drawn_camera.horizontal_fov_deg)
        self.camera = self.camera or drawn_camera
        drawn_distance = rng.uniform(*style.distance_cm) * 10
        self.distance_mm = float(self.distance_mm or drawn_distance)
        # where the face sits in the picture, and the pose the volunteer settles in
        self.face_fraction = (rng.uniform(0.4, 0.6), rng.uniform(0.38, 0.52))
        self.base_pose = {"yaw": rng.uniform(-6, 6), "pitch": rng.uniform(-4, 6), "roll": rng.uniform(-7, 7)}
        self.head_follow = (rng.uniform(*HEAD_FOLLOW[0]), rng.uniform(*HEAD_FOLLOW[1]))
        restless = rng.uniform(*style.restlessness)
        self.drift = {name: [_Wave(rng.uniform(0.3, 1) * amplitude * restless, rng.uniform(6, 40),
                                   rng.uniform(0, 2 * np.pi)) for _ in range(2)] for name, amplitude in DRIFT.items()}
        self.jitter = {name: amplitude * restless for name, amplitude in JITTER.items()}
        self.gain_drift = _Wave(rng.uniform(0.02, 0.08), rng.uniform(10, 60), rng.uniform(0, 2 * np.pi))
        self.sensor = Sensor(CameraLook.draw(rng, style), (self.camera.width, self.camera.height), rng)
        self.light: Light = style.draw_light(rng)
        self._texture = self._lit_texture()
        self._work = self._texture.copy()   # the texture with this frame's eyes painted in
        self._next_index = 0

    def _screen(self, style: Style, rng: np.random.Generator) -> Screen:
        drawn = style.draw_screen(rng)
        if self.screen is None:
            return drawn
        mm_per_px = self.mm_per_px if self.mm_per_px is not None else drawn.mm_per_px
        return Screen(tuple(self.screen), float(mm_per_px), drawn.camera_offset_mm)

    def _lit_texture(self) -> np.ndarray:
        """The portrait with this room's back-light: the background pushed toward white."""
        image = self.volunteer.portrait.image
        if self.light.backlight <= 0:
            return image.copy()
        background = (1 - self.volunteer.portrait.person)[..., None] * (BACKLIGHT_BLOOM * self.light.backlight)
        return np.clip(image + (255.0 - image) * background, 0, 255).astype(np.uint8)

    # ------------------------------------------------------------ public

    def frame(self, target: tuple[float, float], index: int | None = None, inattentive: bool | None = None,
              pose: tuple[float, float, float] | None = None) -> tuple[bytes, Truth]:
        """One JPEG webcam frame of the volunteer looking at `target` (CSS px).

        index: the frame number (default: the one after the last); inattentive: force the
        volunteer to look elsewhere (True) or at the target (False); None draws it.
        pose: force the head's (yaw, pitch, roll) in degrees instead of drawing it.
        """
        rgb, truth, rng = self._render(target, index, inattentive, pose)
        return self.sensor.encode(rgb, int(rng.integers(-3, 4))), truth

    def render(self, target: tuple[float, float], index: int | None = None, inattentive: bool | None = None,
               pose: tuple[float, float, float] | None = None) -> tuple[np.ndarray, Truth]:
        """Like `frame`, but the (height, width, 3) uint8 RGB picture, before JPEG encoding."""
        rgb, truth, _ = self._render(target, index, inattentive, pose)
        return rgb, truth

    # ------------------------------------------------------------ steps

    def _render(self, target, index, inattentive, forced_pose):
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

        looked_at_mm = self.display.point_mm(looked_at)
        pose = self._pose(t, rng, no_face, looked_at_mm, forced_pose)
        light = self.light.jittered(rng)
        eyeballs = pose.to_camera(self.volunteer.eyeballs_mm)
        gazes = [geometry.eye_gaze(eyeball, looked_at_mm, pose) for eyeball in eyeballs]
        irises_mm = self._paint_eyes(pose, gazes, light, blink, rng)
        picture = self._draw_head(pose, light)
        picture = self.sensor.expose(picture, light.colour, light.level, 1 + self.gain_drift(t), rng)

        origin = eyeballs.mean(axis=0)
        direction = (looked_at_mm - origin) / np.linalg.norm(looked_at_mm - origin)
        (lx, ly), (rx, ry) = self.camera.project(pose.to_camera(irises_mm))
        truth = Truth(
            index=index, target=(float(target[0]), float(target[1])), looked_at=looked_at,
            gaze_yaw=float(np.mean([g.yaw for g in gazes])), gaze_pitch=float(np.mean([g.pitch for g in gazes])),
            gaze_yaw_in_head=float(np.mean([g.yaw_in_head for g in gazes])),
            gaze_pitch_in_head=float(np.mean([g.pitch_in_head for g in gazes])),
            yaw=pose.yaw, pitch=pose.pitch, roll=math.degrees(math.atan2(ry - ly, rx - lx)),
            head_mm=_floats(pose.centre), eyes_px=((float(lx), float(ly)), (float(rx), float(ry))),
            blink=blink, inattentive=inattentive, no_face=no_face,
            gaze_origin_mm=_floats(origin), gaze_direction=_floats(direction), looked_at_mm=_floats(looked_at_mm),
            screen_mm=_floats(self.display.size_mm), camera_offset_mm=_floats(self.display.camera_offset_mm),
            focal_px=float(self.camera.focal), frame_size=(self.camera.width, self.camera.height),
            style=self.volunteer.style.name)
        return picture, truth, rng

    def _random_point(self, rng: np.random.Generator) -> tuple[float, float]:
        """Somewhere on or around the screen: where an inattentive volunteer looks."""
        width, height = self.screen
        return float(rng.uniform(-0.2, 1.2) * width), float(rng.uniform(-0.2, 1.2) * height)

    def _pose(self, t: float, rng: np.random.Generator, no_face: bool, target_mm: np.ndarray,
              forced: tuple[float, float, float] | None) -> HeadPose:
        def value(name: str) -> float:
            return sum(wave(t) for wave in self.drift[name]) + rng.normal(0, self.jitter[name])

        depth = self.distance_mm + value("z")
        face_pixel = (self.face_fraction[0] * self.camera.width, self.face_fraction[1] * self.camera.height)
        centre = self.camera.unproject(face_pixel, depth) + (value("x"), value("y"), 0)
        # the head turns part of the way toward what the eyes look at
        toward_yaw, toward_pitch = geometry.direction_angles(target_mm - centre)
        if no_face:  # leaned far out of the picture
            centre[0] += math.copysign(1.6 * depth, rng.uniform(-1, 1))
        angles = (self.base_pose["yaw"] + self.head_follow[0] * toward_yaw + value("yaw"),
                  self.base_pose["pitch"] + self.head_follow[1] * toward_pitch + value("pitch"),
                  self.base_pose["roll"] + value("roll"))
        yaw, pitch, roll = forced if forced is not None else angles
        return HeadPose(yaw=float(yaw), pitch=float(pitch), roll=float(roll), centre=centre)

    def _paint_eyes(self, pose: HeadPose, gazes, light: Light, blink: bool, rng: np.random.Generator) -> np.ndarray:
        """Repaint both eyes in the texture; the iris centres, face mm."""
        volunteer, portrait = self.volunteer, self.volunteer.portrait
        light_in_head = pose.rotation.T @ light.direction
        pupil = volunteer.eye_look.pupil_fraction * (0.85 + 0.3 * max(0.0, 1 - light.level))
        irises = []
        for eye, eyeball, shift, gaze in zip(portrait.eyes, volunteer.eyeballs_mm, volunteer.eye_shift_mm, gazes):
            iris_mm = eyeball + geometry.EYEBALL_RADIUS_MM * gaze.in_head
            to_camera = pose.rotation.T @ -pose.to_camera(eyeball[None])[0]
            view = _iris_view(portrait, iris_mm - shift, eyeball - shift, gaze.in_head, light_in_head,
                              to_camera / np.linalg.norm(to_camera), pupil)
            # the photograph's lids belong to its own gaze (at the photographer): lids move from there
            down = -math.sin(math.radians(gaze.pitch_in_head)) - volunteer.photo_gaze_down
            closure = rng.uniform(0.97, 1.0) if blink else float(np.clip(LID_FOLLOW * down, *LID_RANGE))
            paint_eye(self._work, self._texture, eye, view, closure, volunteer.eye_look,
                      lower_drop=max(0.0, LOWER_LID_FOLLOW * down))
            irises.append(iris_mm)
        return np.array(irises)

    def _draw_head(self, pose: HeadPose, light: Light) -> np.ndarray:
        """The surround warped as a plane, the 3-D face drawn over it, shaded by the light and
        the head's own shadows."""
        size = (self.camera.width, self.camera.height)
        picture = cv2.warpPerspective(self._work, self._homography(pose), size, flags=cv2.INTER_LINEAR,
                                      borderMode=cv2.BORDER_REPLICATE)
        head, portrait = self.volunteer.head, self.volunteer.portrait
        vertices = pose.to_camera(head.vertices_mm)
        if (vertices[:, 2] < 50).any():
            return picture
        normals = head.normals @ pose.rotation.T
        photo_normals = head.normals @ portrait.to_face
        light_view = shadows.shadow_map(head, vertices, light.direction)
        values = np.column_stack([vertex_shade(normals, photo_normals, light),
                                  vertex_shade(normals, photo_normals, light, lit=0.0),
                                  light_view.coordinates(vertices), shadows.slope_bias(normals, light.direction),
                                  vertices[:, 2]])
        drawn = rasterise(head, self.camera.project(vertices), vertices[:, 2], values, size)
        if drawn is None:
            return picture
        x0, y0, x1, y1 = drawn.box
        face = drawn.sample(self._work).astype(np.float32)
        alpha = drawn.sample(portrait.face_alpha)[..., None]
        shade = self._shade(drawn, light_view, light, float(np.median(vertices[:, 2])))
        lit = 1 + alpha * (shade[..., None] - 1)
        behind = picture[y0:y1, x0:x1].astype(np.float32)
        picture[y0:y1, x0:x1] = np.clip((behind + alpha * (face - behind)) * lit, 0, 255).astype(np.uint8)
        if portrait.glasses is not None:
            draw_glasses(picture, portrait.glasses, pose.rotation, pose.centre, self.camera.project, self.camera.focal,
                         pose.rotation.T @ light.direction, 1 - light.ambient, float(shade[drawn.covered].mean()),
                         lambda points: drawn.value_at(points, DEPTH))
        return picture

    def _shade(self, drawn, light_view: shadows.ShadowMap, light: Light, depth_mm: float) -> np.ndarray:
        """(h, w) light factor per pixel: lit or in the head's shadow, the shadow's edge softened."""
        values = drawn.values
        rows, cols = np.nonzero(drawn.covered)
        in_light = np.ones(drawn.covered.shape, np.float32)
        in_light[rows, cols] = light_view.lit(values[rows, cols, LIGHT_VIEW], values[rows, cols, BIAS])
        in_light = shadows.soft_edge(in_light, light.ambient, self.camera.focal / depth_mm)
        shade = values[..., SHADOWED] + (values[..., LIT] - values[..., SHADOWED]) * in_light
        return np.where(drawn.covered, shade, 1.0)

    def _homography(self, pose: HeadPose) -> np.ndarray:
        """Portrait px -> frame px for the surround plane (hair, ears, background) in this pose."""
        portrait = self.volunteer.portrait
        x0, y0, x1, y1 = portrait.face_box
        corners = np.array([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], np.float64)
        projected = self.camera.project(pose.to_camera(portrait.face_mm(corners)))
        return cv2.getPerspectiveTransform(corners.astype(np.float32), projected.astype(np.float32))


def _iris_view(portrait: Portrait, iris_mm: np.ndarray, eyeball_mm: np.ndarray, gaze: np.ndarray,
               light: np.ndarray, to_camera: np.ndarray, pupil: float) -> IrisView:
    """The iris disc as the photo (texture) sees it, and where the cornea reflects the light."""
    normal_photo = portrait.to_face.T @ -gaze          # into the eye, photo axes
    sideways = normal_photo[:2]
    length = float(np.linalg.norm(sideways))
    tilt = sideways / length if length > 1e-6 else np.array([1.0, 0.0])
    halfway = light + to_camera
    halfway /= np.linalg.norm(halfway)
    glint_mm = eyeball_mm + CORNEA_OFFSET_MM * gaze + CORNEA_RADIUS_MM * halfway
    centre, glint = portrait.to_photo(np.vstack([iris_mm, glint_mm]))[:, :2]
    return IrisView(centre, tilt, float(abs(normal_photo[2])), glint, pupil)


def _floats(values) -> tuple[float, ...]:
    return tuple(float(v) for v in values)
