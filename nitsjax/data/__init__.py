"""Data sets for density estimation: ``load(name, root=None, **options) -> (train, val, test)``.

Every split is a float32 numpy array of shape ``(n, d)``. ``names()`` lists the names:

* 2-D toys (``moons``, ``8gaussians``, ``checkerboard``, ``pinwheel``, ``2spirals``,
  ``rings``, ``circles``, ``swissroll``): generated from a seed, see ``nitsjax.data.toys``;
* ``digits``: scikit-learn's 8x8 digits, bundled, so demos need no download;
* UCI tables ``magic``, ``htru2``, ``wine_red``, ``wine_white`` and a user's own file
  (``load("file", path=...)`` or :func:`load_file`): see ``nitsjax.data.tabular``;
* the MAF benchmarks ``power``, ``gas``, ``hepmass``, ``miniboone``, ``bsds300`` with
  MAF's exact preprocessing: see ``nitsjax.data.maf``;
* images ``mnist``, ``cifar10`` and ``bsds300_images`` (patches rebuilt from the JPEGs):
  see ``nitsjax.data.images``.

``describe_columns(train)`` reports constant, linearly dependent and discrete (lattice)
columns before training; see ``nitsjax.data.columns``.

Files are looked up under ``root`` (the data set's folder or its parent), by default
``$NITSJAX_DATA/<folder>`` or ``~/.nitsjax/data/<folder>``; a missing or damaged file is
an error that names the path and where to get the file. Nothing is downloaded.

Example::

    import nitsjax.data as nd
    train, val, test = nd.load("digits")
    train, val, test = nd.load("power", root="~/maf/data")   # MAF archive's data/ folder
"""

from nitsjax.data._files import (
    DataFormatError,
    DataNotFoundError,
    Splits,
    cache_home,
    data_home,
)
from nitsjax.data.columns import ColumnReport, describe_columns, lattice_steps
from nitsjax.data.maf import convert_gas
from nitsjax.data.preprocessing import (
    bits_per_dim,
    dequantize,
    logit_inverse,
    logit_transform,
    preprocess_images,
    scale_logdet,
)
from nitsjax.data.registry import describe, load, names
from nitsjax.data.tabular import load_file

__all__ = [
    "ColumnReport",
    "DataFormatError",
    "DataNotFoundError",
    "Splits",
    "bits_per_dim",
    "cache_home",
    "convert_gas",
    "data_home",
    "dequantize",
    "describe",
    "describe_columns",
    "lattice_steps",
    "load",
    "load_file",
    "logit_inverse",
    "logit_transform",
    "names",
    "preprocess_images",
    "scale_logdet",
]
