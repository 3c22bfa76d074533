"""Beyond the density on real data: NITS's exact conditional CDFs on the red wine table.

    python experiments/beyond_density.py            # the recorded run (a few minutes)
    python experiments/beyond_density.py --quick    # every code path, tiny budget

The 12 columns of UCI's red wine table (11 physico-chemical measurements and the integer
quality score, last), every one recorded on a lattice (0.1 g/l, 1 mg/l, ...). Rows are
shuffled (``--seed``) and split 80/10/10; ``nj.fit`` trains ``nj.flows.nits(12, ...)``
on the training split with its default dequantisation (``x + (u - 1/2) * step`` on every
lattice column, ``u ~ U[0, 1)``), so the model is a density for the dequantised table and every
question below has an exact answer from its conditional CDFs. The baseline is the
full-covariance Gaussian fitted to the same dequantised training rows (a one-layer MAF at
its data init, ``maf(12, layers=1)``: its answers are the Gaussian closed forms, which
``tests/test_distribution_functions.py`` checks), asked the same questions through the
same calls.

1. Discrete log-likelihood of the test rows as recorded, ``flow.log_prob_discrete(x,
   bin_width=step)`` (exact: the probability of each recorded row), next to the
   density at the bin centre times the bin volume.
2. Calibration: the probability integral transform ``flow.cdf`` of the dequantised test
   rows (``x + (v - 1/2) * step``, ``v ~ U[0, 1)``: uniform when the model is right), per column
   the Kolmogorov-Smirnov distance to Uniform(0, 1), and a histogram figure.
3. Quality given the measurements: ``log P(q | x_1..11) = log_prob_censored(...) -
   marginal_log_prob(x_1..11)``, both exact (quality is the last coordinate): mean log
   probability of the true score and accuracy of the most probable score.
4. Missing values: in each test row one of the 11 measurements, chosen at random, is
   missing. ``flow.impute`` (sampling-importance-resampling over the model's own
   conditionals) against the Gaussian conditional mean; the log predictive density of the
   true value, ``log p(x) - log p(x_-j)``, with ``log p(x_-j)`` from
   ``log_prob_censored`` (importance sampling, with its standard error). And a missing
   suffix (alcohol and quality), which ``impute`` draws exactly.

Results go to stdout and ``--out`` (markdown) with the figure next to it.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time
import warnings

import jax
import numpy as np
from scipy import stats

import nitsjax as nj
from nitsjax.data.columns import lattice_steps

NAMES = ("fixed acidity", "volatile acidity", "citric acid", "residual sugar", "chlorides",
         "free SO2", "total SO2", "density", "pH", "sulphates", "alcohol", "quality")


def load(root: pathlib.Path) -> np.ndarray:
    path = root / "winequality-red" / "winequality-red.csv"
    first = path.read_text().splitlines()[0]
    sep = ";" if ";" in first else ","
    skip = 0 if first.split(sep)[0].replace(".", "").strip().isdigit() else 1
    return np.loadtxt(path, delimiter=sep, skiprows=skip)


def mean_se(a) -> str:
    """Mean ± standard error over the finite entries (how many are not, if any)."""
    a = np.asarray(a, np.float64)
    ok = np.isfinite(a)
    note = "" if ok.all() else f" ({int((~ok).sum())} non-finite left out)"
    a = a[ok]
    return f"{a.mean():.3f} ± {a.std(ddof=1) / np.sqrt(a.size):.3f}{note}"


def gaussian_conditional(mean, cov, x, j):
    """Mean and sd of coordinate j given all the others, per row of x."""
    o = [i for i in range(len(mean)) if i != j]
    w = np.linalg.solve(cov[np.ix_(o, o)], cov[o, j])
    return mean[j] + (x[:, o] - mean[o]) @ w, np.sqrt(cov[j, j] - cov[o, j] @ w)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", default="/work/shared/data")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--blocks", type=int, default=2)
    p.add_argument("--arch", type=int, nargs="+", default=[8, 8], help="PNN hidden widths")
    p.add_argument("--float32", action="store_true",
                   help="float32 instead of float64 (NITS's CDFs round to 1 sooner)")
    p.add_argument("--impute-rows", type=int, default=60)
    p.add_argument("--proposals", type=int, default=128)
    p.add_argument("--draws", type=int, default=64)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", default="experiments/results/beyond_density.md")
    a = p.parse_args(argv)
    jax.config.update("jax_enable_x64", not a.float32)
    dtype = np.float32 if a.float32 else np.float64
    if a.quick:
        a.steps, a.hidden, a.blocks, a.impute_rows, a.proposals, a.draws = 50, 16, 1, 8, 16, 8
    t0 = time.time()
    rng = np.random.default_rng(a.seed)
    data = load(pathlib.Path(a.root))
    data = data[rng.permutation(len(data))].astype(dtype)
    n = len(data)
    train, val, test = np.split(data, [int(0.8 * n), int(0.9 * n)])
    step = lattice_steps(train).astype(dtype)
    d = data.shape[1]
    lines = []

    def out(s=""):
        print(s, flush=True)
        lines.append(s)

    out(f"Red wine, {n} rows ({len(train)}/{len(val)}/{len(test)}), d = {d}; lattice steps "
        f"(training split): " + ", ".join(f"{NAMES[j]} {step[j]:g}" for j in range(d)))

    key = jax.random.key(a.seed)
    flow = nj.flows.nits(d, hidden=a.hidden, blocks=a.blocks, arch=tuple(a.arch))
    start = jax.tree_util.tree_map(lambda v: v.astype(dtype), flow.init(key))
    params, hist = nj.fit(flow, start, train, val, key=key, steps=a.steps,
                          batch_size=256, patience=None, progress=False)
    deq = (train + (rng.uniform(size=train.shape) - 0.5) * step).astype(dtype)
    gauss = nj.flows.maf(d, layers=1, hidden=(8,))
    g_params = gauss.data_init(jax.tree_util.tree_map(lambda v: v.astype(dtype),
                                                      gauss.init(key)), deq)
    mean, cov = deq.mean(0), np.cov(deq.T, bias=True)
    cov = cov + 1e-6 * np.diag(np.diag(cov))  # the whitening layer's jitter
    out(f"NITS: nits({d}, hidden={a.hidden}, blocks={a.blocks}, arch={tuple(a.arch)}), "
        f"{a.steps} steps of nj.fit "
        f"(batch 256; validation NLL, the dequantisation bound: {hist.best_val_nll:.3f} at "
        f"step {hist.best_step}, Gaussian {hist.gaussian_val_nll:.3f}); fit in "
        f"{time.time() - t0:.0f} s")
    models = {"NITS": (flow, params), "Gaussian": (gauss, g_params)}
    sat_warnings = []

    # 1. discrete log-likelihood of the recorded test rows
    out("\n### 1. Log-likelihood of the test rows as recorded (nats per row, ± s.e.)\n")
    out("| model | exact discrete `log_prob_discrete` | density at the bin centre x volume |")
    out("|---|---|---|")
    centre = test  # fit's bins are centred on the recorded values
    vol = np.sum(np.log(np.where(step > 0, step, 1.0)))
    for name, (f, pr) in models.items():
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            disc = np.asarray(f.log_prob_discrete(pr, centre, bin_width=step))
        sat_warnings += [str(x.message) for x in w]
        dens = np.asarray(f.log_prob(pr, centre)) + vol
        out(f"| {name} | {mean_se(disc)} | {mean_se(dens)} |")

    # 2. PIT calibration
    out("\n### 2. Calibration: PIT `flow.cdf` of the dequantised test rows\n")
    out("Kolmogorov-Smirnov distance of each column's PIT values to Uniform(0, 1) "
        f"({len(test)} rows; 5% critical value {1.358 / np.sqrt(len(test)):.3f}):\n")
    out("| model | " + " | ".join(NAMES) + " | mean |")
    out("|---" * (d + 2) + "|")
    deq_test = (test + (rng.uniform(size=test.shape) - 0.5) * step).astype(dtype)
    pits = {}
    for name, (f, pr) in models.items():
        u = np.asarray(f.cdf(pr, deq_test))
        pits[name] = u
        ks = [stats.kstest(u[:, j], "uniform").statistic for j in range(d)]
        out(f"| {name} | " + " | ".join(f"{k:.3f}" for k in ks) + f" | {np.mean(ks):.3f} |")
    fig_path = pathlib.Path(a.out).with_name("beyond_density_pit.png")
    _pit_figure(pits, fig_path)
    out(f"\n![PIT histograms]({fig_path.name})")

    # 3. quality given the measurements (exact: quality is the last coordinate)
    out("\n### 3. Quality score given the 11 measurements (exact conditional)\n")
    levels = np.arange(np.min(train[:, -1]), np.max(train[:, -1]) + 1)
    feats = test[:, :-1]  # the measurements at their bin centres
    out("| model | mean log P(true score) | accuracy of the most probable score |")
    out("|---|---|---|")
    for name, (f, pr) in models.items():
        marg = np.asarray(f.marginal_log_prob(pr, feats))
        logp = []
        for q in levels:
            lo = np.c_[feats, np.full(len(test), q - 0.5)]
            hi = np.c_[feats, np.full(len(test), q + 0.5)]
            logp.append(np.asarray(f.log_prob_censored(pr, lo, hi).log_prob) - marg)
        logp = np.stack(logp, 1)
        true = np.searchsorted(levels, test[:, -1])
        acc = np.mean(np.argmax(logp, 1) == true)
        out(f"| {name} | {mean_se(logp[np.arange(len(test)), true])} | {acc:.3f} |")
    freq = np.array([np.mean(train[:, -1] == q) for q in levels])
    true = np.searchsorted(levels, test[:, -1])
    out(f"| training frequencies | {mean_se(np.log(freq[true]))} | "
        f"{np.mean(true == np.argmax(freq)):.3f} |")

    # 4. imputation
    m = min(a.impute_rows, len(test))
    rows = deq_test[:m]
    miss = rng.integers(0, d - 1, size=m)  # one of the 11 measurements per row
    mask = np.zeros(rows.shape, bool)
    mask[np.arange(m), miss] = True
    out(f"\n### 4. Imputation ({m} test rows, one measurement missing at random)\n")
    out(f"`flow.impute(..., n={a.draws}, proposals={a.proposals})`; errors in units of the "
        f"column's training sd; log predictive density of the true value in nats, with "
        f"`log p(x_-j)` from `log_prob_censored(num_samples={a.proposals})` (mean s.e. of "
        f"the estimate in brackets).\n")
    sd = train.std(0)
    t1 = time.time()
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        draws = np.asarray(flow.impute(params, jax.random.key(1), rows, mask, a.draws,
                                       proposals=a.proposals))
        lo = np.where(mask, -np.inf, rows)
        hi = np.where(mask, np.inf, rows)
        cens = flow.log_prob_censored(params, lo, hi, key=jax.random.key(2),
                                      num_samples=a.proposals)
    sat_warnings += [str(x.message) for x in w]
    t_imp = time.time() - t1
    nits_mean = draws.mean(0)[np.arange(m), miss]
    nits_lpd = np.asarray(flow.log_prob(params, rows)) - np.asarray(cens.log_prob)
    g_mu = np.empty(m)
    g_lpd = np.empty(m)
    for j in range(d - 1):
        r = miss == j
        if r.any():
            mu, s = gaussian_conditional(mean, cov, rows[r], j)
            g_mu[r] = mu
            g_lpd[r] = stats.norm.logpdf(rows[r, j], mu, s)
    truth = rows[np.arange(m), miss]
    out("| model | RMSE of the conditional mean | mean abs error | log p(true value) |")
    out("|---|---|---|---|")
    for name, mu, lpd in (("NITS", nits_mean, nits_lpd), ("Gaussian", g_mu, g_lpd)):
        e = (mu - truth) / sd[miss]
        extra = f" [{np.mean(np.asarray(cens.stderr)):.3f}]" if name == "NITS" else ""
        out(f"| {name} | {np.sqrt(np.mean(e ** 2)):.3f} | {np.mean(np.abs(e)):.3f} | "
            f"{mean_se(lpd + np.log(sd[miss]))}{extra} |")
    out("\n(log p in units of the column's sd, i.e. plus log sd, so columns are comparable.)")

    # missing suffix: alcohol and quality, drawn exactly
    sfx = np.zeros(rows.shape, bool)
    sfx[:, -2:] = True
    exact = np.asarray(flow.impute(params, jax.random.key(3), rows, sfx, a.draws)).mean(0)
    mu_alc = np.empty(m)
    o = list(range(d - 2))
    w_ = np.linalg.solve(cov[np.ix_(o, o)], cov[o, d - 2])
    mu_alc = mean[d - 2] + (rows[:, o] - mean[o]) @ w_
    e_n = (exact[:, -2] - rows[:, -2]) / sd[-2]
    e_g = (mu_alc - rows[:, -2]) / sd[-2]
    out(f"\nMissing suffix (alcohol and quality, exact ancestral draws): RMSE of alcohol's "
        f"conditional mean, NITS {np.sqrt(np.mean(e_n ** 2)):.3f}, Gaussian "
        f"{np.sqrt(np.mean(e_g ** 2)):.3f} (training sd units).")
    out(f"\nImputation and its censored likelihoods took {t_imp:.0f} s; total "
        f"{time.time() - t0:.0f} s on {jax.device_count()} {jax.default_backend()} device(s).")
    if sat_warnings:
        out(f"\nTail-limit warnings ({len(sat_warnings)}): " + " / ".join(
            s.split(" (far")[0] for s in sat_warnings))
    cmd = "python experiments/beyond_density.py " + " ".join(sys.argv[1:] if argv is None
                                                              else argv)
    body = "\n".join(lines)
    text = (f"# Beyond the density: exact distribution functions on real data\n\n"
            f"Command: `{cmd.strip()}` (JAX {jax.__version__}, "
            f"{'float32' if a.float32 else 'float64'}).\n\n{body}\n")
    pathlib.Path(a.out).write_text(text)
    print(f"wrote {a.out}")


def _pit_figure(pits, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = next(iter(pits.values())).shape[1]
    fig, axes = plt.subplots(2, 6, figsize=(14, 4.5), sharey=True)
    for j, ax in enumerate(axes.ravel()[:d]):
        for name, u in pits.items():
            ax.hist(u[:, j], bins=10, range=(0, 1), histtype="step", density=True, label=name)
        ax.axhline(1.0, color="grey", lw=0.8)
        ax.set_title(NAMES[j], fontsize=9)
    axes.ravel()[0].legend(fontsize=8)
    fig.suptitle("PIT of the dequantised red wine test rows (uniform when calibrated)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


if __name__ == "__main__":
    main()
