"""The try-on work builds on ``synthetic/figures.py``; the DeepFashion sample and the embedded Pinterest site
draw with it too, so their pictures must not change. The digest below was computed from figures.py as it
stood before the try-on stage existed (commit 2b211de); any change to what it draws changes the digest."""
import hashlib

import numpy as np

from fashion_pipeline.synthetic import figures

DIGEST_BEFORE_TRYON = "1a60ed17ee24188992b5e95fbc39a0c83bd55d0f249c653eb50985fb3c3d53dc"


def _digest() -> str:
    digest = hashlib.sha256()
    rng = np.random.default_rng(2024)
    for category_type in (1, 2, 3):  # DeepFashion sample pictures
        image, box = figures.render_garment_photo(rng, category_type, (120, 150))
        digest.update(np.asarray(image).tobytes())
        digest.update(str(box).encode())
    for look in ("full", "separates"):  # the embedded site's runway looks and their true masks
        image, boxes, truth = figures.render_runway_look_with_truth(rng, (160, 240), look)
        digest.update(np.asarray(image).tobytes())
        digest.update(str(boxes).encode())
        digest.update(truth.mask.tobytes())
        digest.update(str(truth.patterns).encode())
    for kind in figures.DISTRACTOR_KINDS:  # the site's distractors
        digest.update(np.asarray(figures.render_distractor(rng, (160, 240), kind)).tobytes())
    return digest.hexdigest()


def test_figures_draw_the_same_pictures_as_before_the_tryon_stage():
    assert _digest() == DIGEST_BEFORE_TRYON
