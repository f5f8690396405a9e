"""Model outliers: every reviewed-in sample scored under a model, for collection.review."""
from __future__ import annotations

import math

from sqlalchemy import select
from sqlalchemy.orm import Session

from gazelab.schema import CollectionSession, Sample, SampleImages
from trainer.inference import Predictor, sample_inputs


def model_errors(db: Session, predictor: Predictor, batch: int = 256) -> dict[int, float]:
    """Error in px of `predictor` on every accepted or flagged sample with images, through
    each session's personal calibration where one is fitted (a volunteer's constant offset
    is not an outlier)."""
    query = (select(Sample, SampleImages, CollectionSession.screen_width, CollectionSession.screen_height)
             .join(SampleImages, SampleImages.sample_id == Sample.id)
             .join(CollectionSession, CollectionSession.id == Sample.session_id)
             .where(Sample.status.in_(("accepted", "flagged"))).order_by(Sample.id))
    errors: dict[int, float] = {}
    calibrations: dict = {}
    for rows in db.execute(query.execution_options(yield_per=batch)).partitions():
        outputs, features = predictor.outputs_and_features([sample_inputs(s, images) for s, images, _, _ in rows])
        predictions = outputs.copy()
        for i, (sample, *_) in enumerate(rows):
            if sample.session_id not in calibrations:
                calibrations[sample.session_id] = predictor.calibration(db, sample.session_id)
            mapping = calibrations[sample.session_id]
            if mapping is not None:
                predictions[i] = mapping.apply(outputs[i:i + 1], features[i:i + 1])[0]
        for (sample, _, width, height), (x_norm, y_norm) in zip(rows, predictions):
            errors[sample.id] = math.hypot(float(x_norm) * width - sample.target_x,
                                           float(y_norm) * height - sample.target_y)
    return errors
