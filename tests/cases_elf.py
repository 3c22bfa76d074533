"""Contract cases for ELF (Gopal, arXiv 2112.06997): the layer with a context (its
inverse is a parallel fixed-point iteration) and the 2-D ``elf`` flow (integrates to
one)."""

from contract import BijectorCase, FlowCase

from nitsjax.bijectors.elf import elf_layer
from nitsjax.flows.elf import elf

BIJECTORS = [
    BijectorCase("elf_layer_context",
                 lambda: elf_layer(3, (16,), units=3, lipschitz=0.95, context_dim=2), 3,
                 context_dim=2, perturb=0.3),
]

FLOWS = [
    FlowCase("elf", lambda: elf(2, layers=2, hidden=(16,), units=4)),
]
