"""Geometry in the model (issue #13): the gaze ray meets the screen where the maths says,
mirrored samples stay consistent, the held-out volunteers never enter a training split, and
the gaze-ray model trains, cross-validates and predicts through the public inference API."""
from __future__ import annotations

import math

import numpy as np
import torch

from gazelab.db import session_scope
from gazelab.schema import ModelArtifact
from tests.trainer_data import add_samples
from trainer.artifacts import weights_bytes
from trainer.params import TrainParams
from trainer import geometry
from trainer.crossval import cross_validate
from trainer.inference import Predictor, geometry_of
from trainer.models import build_model
from trainer.models.gaze_ray import direction, rotation, screen_fractions
from trainer.snapshot import attach_geometry, kfold, load_snapshot
from trainer.transforms import GEOMETRY_MIRROR, mirror_inputs, normalisation_stats


def test_a_ray_towards_a_screen_point_lands_on_it():
    rng = np.random.default_rng(0)
    screen_mm = np.array([[600.0, 340.0]] * 50)
    fractions = rng.uniform(0, 1, (50, 2))
    points = geometry.screen_point_mm(fractions, screen_mm)
    origins = np.column_stack([rng.uniform(-80, 80, 50), rng.uniform(100, 250, 50), rng.uniform(400, 900, 50)])
    rays = points - origins
    rays /= np.linalg.norm(rays, axis=1, keepdims=True)
    landed = screen_fractions(torch.tensor(origins / 1000), torch.tensor(rays), torch.tensor(screen_mm / 1000))
    assert np.allclose(landed.numpy(), fractions, atol=1e-9)


def test_head_rotation_and_gaze_angles_follow_the_extractions_signs():
    # head turned 20 degrees toward the image's right, eyes straight ahead in the head:
    yaw, zero = torch.tensor([20.0]), torch.tensor([0.0])
    gaze = (rotation(yaw, zero, zero) @ direction(zero, zero).unsqueeze(-1)).squeeze(-1)[0]
    assert gaze[0] > 0 and gaze[2] < 0 and math.isclose(math.degrees(math.atan2(gaze[0], -gaze[2])), 20, abs_tol=1e-4)
    # head pitched up 10 degrees, eyes 5 degrees further up in the head: 15 degrees up (y is down)
    gaze = (rotation(zero, torch.tensor([10.0]), zero)
            @ direction(zero, torch.tensor([math.radians(5)])).unsqueeze(-1)).squeeze(-1)[0]
    assert math.isclose(math.degrees(math.atan2(-gaze[1], -gaze[2])), 15, abs_tol=1e-4)


def test_mirrored_geometry_is_the_mirrored_scene():
    geometry_rows = torch.tensor([[0.05, 0.15, 0.6, 0.5, 0.3]])
    mirrored = mirror_inputs({"geometry": geometry_rows}, torch.tensor([True]))["geometry"]
    assert torch.equal(mirrored, geometry_rows * torch.tensor(GEOMETRY_MIRROR))
    # the ray from the mirrored eyes along the mirrored direction lands at 1 - x
    ray = torch.tensor([[0.1, 0.2, -0.97]])
    flipped = ray * torch.tensor([-1.0, 1.0, 1.0])
    here = screen_fractions(geometry_rows[:, :3], ray, geometry_rows[:, 3:])
    there = screen_fractions(mirrored[:, :3], flipped, mirrored[:, 3:])
    assert torch.allclose(there[:, 0], 1 - here[:, 0]) and torch.allclose(there[:, 1], here[:, 1])


def test_eye_origin_from_the_iris_size():
    # two irises 11.7 mm wide, 60 mm apart, 500 mm in front of a 640 px camera with a 60 degree view
    focal = geometry.focal_px(640, 60.0)
    landmarks = np.full((1, 478, 2), 100.0)
    for centre_index, ring, x_mm in ((468, (469, 470, 471, 472), -30.0), (473, (474, 475, 476, 477), 30.0)):
        centre = np.array([320 + focal * x_mm / 500, 240 + focal * 80 / 500])
        landmarks[0, centre_index] = centre
        radius = focal * geometry.IRIS_DIAMETER_MM / 2 / 500
        for k, index in enumerate(ring):   # right, top, left, bottom
            angle = k * math.pi / 2
            landmarks[0, index] = centre + radius * np.array([math.cos(angle), -math.sin(angle)])
    origin = geometry.eye_origin_mm(landmarks, np.array([[640, 480]]), 60.0)[0]
    assert np.allclose(origin, [0.0, 80.0, 500.0], atol=1e-6)
    inputs = geometry.geometry_inputs(landmarks, np.array([[640, 480]]), np.array([[1920, 1080]]),
                                      np.array([np.nan]), 60.0)[0]
    assert np.allclose(inputs, [0, 0.08, 0.5, 1920 * geometry.TYPICAL_MM_PER_PX / 1000,
                                1080 * geometry.TYPICAL_MM_PER_PX / 1000], atol=1e-6)
    no_landmarks = geometry.geometry_inputs(np.full((1, 478, 2), np.nan), np.array([[640, 480]]),
                                            np.array([[1920, 1080]]), np.array([0.3]), 60.0)[0]
    assert np.allclose(no_landmarks[:3], np.asarray(geometry.TYPICAL_ORIGIN_MM) / 1000)


def test_held_out_volunteers_never_enter_a_training_split(gz):
    add_samples(gz, 9, 6)
    with session_scope(gz.config.database_url) as db:
        snapshot = load_snapshot(db, 64)
    volunteers = sorted(set(snapshot.volunteer_ids))
    held_out = frozenset(volunteers[:3])
    layouts = kfold(snapshot, 3, 0.2, seed=1, held_out=held_out)
    tested = [g for layout in layouts for g in layout["groups"]["test"]]
    assert sorted(tested) == volunteers            # everyone tested exactly once
    for layout in layouts:
        trained = set(layout["groups"]["train"]) | set(layout["groups"]["validation"])
        assert not trained & held_out and trained
        assert not set(snapshot.volunteer_ids[layout["indices"]["train"]]) & held_out
    params = TrainParams.from_config(gz.config, epochs=2, batch_size=32, folds=3, device="cpu",
                                     architecture="gaze_ray", inputs="full_geometry")
    result = cross_validate(snapshot, params, held_out=held_out)
    report = result["crossval"]
    assert report["volunteers"] == 6 and report["held_out"]["volunteers"] == 3
    assert report["held_out"]["zero_shot"]["model"]["mean_px"] > 0
    assert {row["volunteer_id"] for row in result["per_volunteer"] if row["held_out"]} == held_out


def test_gaze_ray_model_predicts_through_the_inference_api(gz):
    add_samples(gz, 4, 8)
    with session_scope(gz.config.database_url) as db:
        snapshot = load_snapshot(db, 64)
    rows = attach_geometry(snapshot, 60.0)
    samples = [{**{k: snapshot.images[k][i] for k in snapshot.images}, "yaw": float(snapshot.angles[i, 0]),
                "pitch": float(snapshot.angles[i, 1]), "roll": float(snapshot.angles[i, 2]),
                "landmarks": snapshot.landmarks[i], "frame_size": tuple(snapshot.frame_sizes[i]),
                "screen": tuple(snapshot.screens[i]), "mm_per_px": float(snapshot.mm_per_px[i])}
               for i in range(5)]
    assert np.allclose(geometry_of(samples, 60.0), rows[:5])
    spec = {"name": "gaze_ray", "inputs": "full_geometry", "image_size": 64, "hfov_deg": 60.0}
    model = build_model(spec).eval()
    stats = normalisation_stats(snapshot.images, np.arange(len(snapshot)), ("face", "l_eye", "r_eye", "head_pos"))
    artifact = ModelArtifact(id=0, weights=weights_bytes(model), architecture=spec, normalisation=stats,
                             error_grid={})
    predicted = Predictor(artifact).predict(samples)
    assert predicted.shape == (5, 2) and np.isfinite(predicted).all()
