"""The virtual volunteer: synthetic webcam frames of a real face looking at a known point.

`VirtualVolunteer(seed, style=...).session().frame((x, y)) -> (jpeg, Truth)` renders a textured
3-D head (two public-domain portraits, Face Mesh geometry; simulator.face, simulator.mesh)
with its own identity (skin, hair, facial hair, glasses on a lens plane -- simulator.glasses --,
age marks, eye shape and iris), whose eyeballs turn toward the point, under a room's light
that the head casts shadows from (simulator.lighting, simulator.shadows) and through a webcam
(simulator.render), all drawn from a named style (simulator.styles; one is held out of
training). `Truth` records the gaze, the head pose and the 3-D gaze ray in camera-frame mm.
`simulator.video` writes Y4M fake-webcam videos, `simulator.demo` fills the database and
`simulator.contact_sheet` draws a PNG of every style as the extraction sees it.
"""
from simulator.styles import HELD_OUT_STYLE, STYLES, TRAINING_STYLES, style_for_volunteer
from simulator.volunteer import Truth, VirtualSession, VirtualVolunteer

SIMULATOR_VERSION = 3   # bump when frames change for the same seed: caches of rendered data key on it

__all__ = ["HELD_OUT_STYLE", "SIMULATOR_VERSION", "STYLES", "TRAINING_STYLES", "Truth", "VirtualSession",
           "VirtualVolunteer", "style_for_volunteer"]
