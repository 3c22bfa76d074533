"""Ready-made flows: ``maf``, ``iaf``, ``realnvp``, ``nsf``, ``nits``, ``image_nits`` and
``mtaf``.

Each is registered once (``nitsjax.registry``); its signature is its config schema."""

from nitsjax.flow import Flow
from nitsjax.flows.affine import iaf, maf, realnvp
from nitsjax.flows.image_nits import ImageNITSFlow, image_nits
from nitsjax.flows.mtaf import MTAFFlow, mtaf
from nitsjax.flows.nits import NITSFlow, nits
from nitsjax.flows.spline import nsf
from nitsjax.registry import register

register("maf", maf)
register("iaf", iaf)
register("realnvp", realnvp)
register("nsf", nsf)
register("nits", nits)
register("image_nits", image_nits)
register("mtaf", mtaf)

__all__ = ["Flow", "ImageNITSFlow", "MTAFFlow", "NITSFlow", "iaf", "image_nits", "maf", "mtaf",
           "nits", "nsf", "realnvp"]
