"""The figures a trained run writes: training curve, samples next to data (an image grid
for image data) and, for 2-D data, the density."""

from __future__ import annotations

from pathlib import Path

from nitsjax.app.datasets import Dataset
from nitsjax.app.evaluation import has_density
from nitsjax.app.trained import TrainedRun

IMAGE_GRID = 64  # samples in an image grid (8 x 8, nitsjax.plots.plot_image_samples)


def write_figures(run: TrainedRun, data: Dataset, key, plots_cfg, records=None,
                  batch_size: int = 4096) -> list[Path]:
    """Training curve, samples vs data (image grid for image data), density (d == 2, for
    models with a density); a conditional run (``data.target``) writes the training curve
    only."""
    from nitsjax import plots

    out, written = run.path, []
    if records:
        written.append(out / "training_curve.png")
        plots.plot_history(records, written[-1], title=f"{run.cfg.model.name} on {data.name}")
    if data.context_dim is not None:
        return written
    test = data.to_original(data.test)
    n = plots_cfg.n_samples
    if data.image_shape is not None:
        n = min(n, IMAGE_GRID)  # the grid shows 64; an image model samples pixel by pixel
    samples = run.sample(key, n)
    written.append(out / "samples.png")
    if data.image_shape is not None:
        plots.plot_image_samples(samples, data.image_shape, test, written[-1])
    else:
        plots.plot_samples(samples, test, written[-1], max_dims=plots_cfg.max_dims)
    if data.dim == 2 and has_density(run.flow):  # a generator has samples only
        written.append(out / "density.png")
        plots.plot_density_2d(
            lambda pts: run.log_prob(pts, batch_size=batch_size), test, written[-1],
            grid=plots_cfg.grid,
        )
    return written


def write_sample_figure(x, image_shape, data_units, path: Path) -> Path:
    """Samples alone or next to data: an image grid when ``image_shape`` is given."""
    from nitsjax import plots

    if image_shape is not None:
        plots.plot_image_samples(x, image_shape, data_units, path)
    else:
        plots.plot_samples(x, data_units, path)
    return path
