"""The virtual volunteer: synthetic webcam frames of a real face looking at a known point.

`VirtualVolunteer(seed).session(screen=(w, h), mm_per_px=...).frame((x, y)) -> (jpeg, Truth)`;
`simulator.video` writes Y4M fake-webcam videos, `simulator.demo` fills the database.
"""
from simulator.volunteer import Truth, VirtualSession, VirtualVolunteer

__all__ = ["Truth", "VirtualSession", "VirtualVolunteer"]
