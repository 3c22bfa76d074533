"""Ready-made flows: ``maf``, ``iaf``, ``realnvp``, ``nsf``, ``nits``, ``image_nits``,
``mtaf`` and ``elf``.

Each is registered once (``nitsjax.registry``); its signature is its config schema."""

from nitsjax.flow import Flow
from nitsjax.flows.affine import iaf, maf, realnvp
from nitsjax.flows.cnf import cnf
from nitsjax.flows.elf import ELFFlow, elf
from nitsjax.flows.image_nits import ImageNITSFlow, image_nits
from nitsjax.flows.mtaf import MTAFFlow, mtaf
from nitsjax.flows.nits import NITSFlow, nits
from nitsjax.flows.spline import nsf
from nitsjax.flows.tensorizing import tensorizing, tensorizing_flow, tt_base
from nitsjax.registry import register

register("maf", maf)
register("iaf", iaf)
register("realnvp", realnvp)
register("nsf", nsf)
register("nits", nits)
register("image_nits", image_nits)
register("mtaf", mtaf)
register("elf", elf)
register("cnf", cnf)
register("tensorizing", tensorizing)

__all__ = ["ELFFlow", "Flow", "ImageNITSFlow", "MTAFFlow", "NITSFlow", "elf", "iaf",
           "cnf",
           "image_nits", "maf", "mtaf",
           "nits", "nsf", "realnvp",
           "tensorizing", "tensorizing_flow", "tt_base"]
