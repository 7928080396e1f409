"""``disgen serve RUN_DIR``: a local web page to try a trained model (issue 7).

    disgen serve RUN_DIR [--host 127.0.0.1] [--port 8000] [--checkpoint auto|best|last]
                 [--max-connections 256] [--header-timeout 10] [--body-timeout 30]

What the page offers follows the run's objective: classifiers (and semi-supervised AAEs) show the
class probabilities of a digit drawn on a canvas or an image dropped on it; autoencoders show its
reconstruction; generators a sample button, a seed, latent sliders and an interpolation between two
seeds; supervised and semi-supervised AAEs also a digit selector. The page is static files shipped
in ``static/`` (no CDN), talking to a small JSON API:

    GET  /api/info          what the run is and which of the endpoints below it offers
    POST /api/predict       image bytes -> class probabilities
    POST /api/reconstruct   image bytes -> the reconstruction
    POST /api/sample        {"seed": N} or {"z": [...]}, optional "label" -> image and its z (or points)
    POST /api/interpolate   {"seed_a": N, "seed_b": M, "steps": S, "label": L} -> images

The run directory is only read. The modules, each importing only those before it:

    explorer     the model side: features, input checks, the answers (no HTTP)
    app          the ASGI app: routes, request reading and its limits, the Host check, JSON errors
    connections  what uvicorn leaves unbounded: a head's time, the number of open connections
    server       the listening socket and uvicorn (the ``disgen serve`` command is disgen.cli.serve)

May import: api and every layer below it. Never cli.
"""

from disgen.serve.app import MAX_JSON_BYTES, make_app
from disgen.serve.explorer import MAX_UPLOAD_BYTES
from disgen.serve.server import serving

__all__ = ["MAX_JSON_BYTES", "MAX_UPLOAD_BYTES", "make_app", "serving"]
