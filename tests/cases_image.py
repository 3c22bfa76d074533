"""Contract case for image NITS: the PixelCNN-conditioned NITS bijector on a tiny image
(one row of two pixels, one resolution: the inverse runs its pixel loop and solver, the
log-det is checked against ``jacfwd`` through the conditioner). Its flow, the
discretised likelihood and the channel autoregression are tested in
``test_image_nits.py``."""

from contract import BijectorCase

from nitsjax.bijectors.image_nits import image_nits_model

BIJECTORS = [
    BijectorCase(
        "image_nits_1x2x1",
        lambda: image_nits_model((1, 2, 1), filters=2, resnets=1, arch=(4,), stages=1).bijector(),
        2,
        low=-0.4,  # the continuous support is [-1/2, 255.5] per sub-pixel
        high=255.4,
        atol=1e-3,  # pixel units: float32 inversion resolves F to ~eps, i.e. ~1e-3 pixels
        perturb=0.1,
        slow=("float32", "float64"),  # compile-heavy; test_image_nits covers the model
    ),
]
