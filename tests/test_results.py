"""Result summaries and the published-numbers table."""

import numpy as np
import pytest

from nitsjax import results


def test_summarize_mean_and_stderr():
    lp = np.array([1.0, 2.0, 3.0, 4.0])
    s = results.summarize(lp)
    assert s.mean == pytest.approx(2.5)
    assert s.stderr == pytest.approx(np.std(lp, ddof=1) / 2.0)
    assert s.n == 4


def test_summarize_refuses_non_finite():
    with pytest.raises(ValueError, match="not finite"):
        results.summarize(np.array([0.0, -np.inf]))


def test_published_table_has_the_standard_cells():
    for ds in ["power", "gas", "hepmass", "miniboone", "bsds300"]:
        models = {p.model for p in results.published(ds)}
        assert {"maf", "realnvp", "nsf", "nsf_ar"} <= models, ds
    assert results.published("power")[0].source


def test_markdown_table_puts_runs_next_to_published():
    table = results.markdown_table(
        [{"dataset": "power", "model": "maf", "mean": 0.1, "stderr": 0.005, "budget": "tiny"}]
    )
    assert "| power | maf | 0.100 +- 0.010 | tiny | 0.24 +- 0.01 |" in table
