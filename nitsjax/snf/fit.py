"""Training a stochastic normalizing flow by the path KL (Wu et al. 2020, section 3;
Hagemann et al. 2021, section 3), with optax, jit-compiled steps and a tqdm bar.

- ``fit_reverse``: an unnormalised target ``gamma``; minimises the reverse path KL
  ``E_forward path[-log w] = KL(P_forward || P_reverse) - log Z``;
- ``fit_forward``: data; minimises the forward path KL, i.e. maximises the ELBO
  ``E_reverse path[log N(x_0) - sum_t log_ratio_t]`` of ``log p(x)``.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from nitsjax.snf.chain import Chain, importance, reverse_path, sample_paths

Array = jax.Array


class ReverseFit(NamedTuple):
    """What ``fit_reverse`` returns.

    Attributes:
      params: trained params.
      samples: ``(n_samples, dim)`` end points of fresh forward paths.
      log_weights: their log importance weights ``(n_samples,)`` against ``log_target``.
      weights: normalised importance weights ``(n_samples,)``.
      ess: effective sample size of the weights (``ess / n_samples`` is the efficiency).
      log_z: estimate of ``log Z`` of the target; ``log_z_se``: its standard error.
      losses: ``(steps,)`` training loss (mean ``-log w`` of the batch).
      batch_ess: ``(steps,)`` effective sample size of each step's training batch (divide
        by ``batch_size`` for the efficiency): the ESS along training, at no extra cost.
    """

    params: dict
    samples: Array
    log_weights: Array
    weights: Array
    ess: Array
    log_z: Array
    log_z_se: Array
    losses: np.ndarray
    batch_ess: Optional[np.ndarray] = None


def _check_chain(chain):
    if not isinstance(chain, Chain):
        raise TypeError(f"chain: expected an nj.snf.chain([...]), got {type(chain).__name__}")


def _check_positive_int(value, arg):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{arg}: expected an integer >= 1, got {value!r}")


def check_log_target(log_target: Callable, chain: Chain, params: dict, key: Array,
                     n: int = 64) -> None:
    """Refuse a ``log_target`` that does not map one event ``(dim,)`` to a scalar, or that
    is NaN or ``+inf`` (or ``-inf`` everywhere) on base samples pushed through the chain's
    bijector and VAE layers (the MCMC layers skipped: they need the target itself)."""
    if not callable(log_target):
        raise TypeError(f"log_target: expected a function (dim,) -> scalar, got "
                        f"{type(log_target).__name__}")
    x = jnp.zeros((chain.dim,))
    try:
        out = jax.eval_shape(log_target, x)
    except Exception as err:  # noqa: BLE001 - reported with the argument's name
        raise ValueError(f"log_target: calling it on one event of shape ({chain.dim},) "
                         f"failed: {err}") from err
    if getattr(out, "shape", None) != ():
        raise ValueError(
            f"log_target: expected a scalar log-density for one event of shape "
            f"({chain.dim},), got shape {getattr(out, 'shape', type(out))}; write it for "
            "one event (nj.snf vmaps it), e.g. lambda x: -0.5 * jnp.sum(x**2)")
    xs = jax.random.normal(key, (n, chain.dim))
    for layer, name in zip(chain.layers, chain.names):  # the deterministic and VAE layers
        if layer.beta is None:
            move = jax.vmap(lambda x, k, f=layer.forward, p=params[name]: f(p, x, k, None)[0])
            xs = move(xs, jax.random.split(jax.random.fold_in(key, len(name)), n))
    values = np.asarray(jax.vmap(log_target)(xs))
    if np.isnan(values).any() or np.isposinf(values).any():
        bad = int((np.isnan(values) | np.isposinf(values)).sum())
        raise ValueError(
            f"log_target: NaN or +inf on {bad} of {n} samples of the initial chain "
            "(its bijector and VAE layers); "
            "the log-density must be finite (or -inf outside its support) everywhere")
    if np.isneginf(values).all():
        raise ValueError(f"log_target: -inf on all {n} samples of the initial chain; the "
                         "initial samples N(0, I) pushed through the chain miss its support")


def _optimizer(optimizer, learning_rate, steps):
    if optimizer is not None:
        return optimizer
    if not learning_rate > 0:
        raise ValueError(f"learning_rate: expected a positive float, got {learning_rate!r}")
    schedule = optax.cosine_decay_schedule(learning_rate, steps, alpha=0.1)
    return optax.chain(optax.clip_by_global_norm(10.0), optax.adam(schedule))


def _train(loss_fn, params, key, steps, optimizer, progress, desc, chunk, has_aux=False):
    """Run ``steps`` optax steps of ``loss_fn(params, key)`` in jit-compiled chunks of
    scanned steps (no host sync inside a chunk); returns params and per-step losses, and
    with ``has_aux`` (``loss_fn`` returns ``(loss, scalar)``) the per-step scalars too."""
    opt_state = optimizer.init(params)

    def one(carry, k):
        params, opt_state = carry
        if has_aux:
            (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, k)
        else:
            (loss, grads), aux = jax.value_and_grad(loss_fn)(params, k), jnp.zeros(())
        # A non-finite step (an MCMC path that left the target's support) is skipped.
        ok = jnp.isfinite(loss) & jnp.all(jnp.array(
            [jnp.all(jnp.isfinite(g)) for g in jax.tree_util.tree_leaves(grads)] or [True]))
        updates, new_state = optimizer.update(grads, opt_state, params)
        new_params = optax.apply_updates(params, updates)
        keep = lambda new, old: jax.tree_util.tree_map(  # noqa: E731
            lambda a, b: jnp.where(ok, a, b), new, old)
        return (keep(new_params, params), keep(new_state, opt_state)), (loss, aux)

    @jax.jit
    def run(carry, keys):
        return jax.lax.scan(one, carry, keys)

    from tqdm.auto import tqdm

    losses, auxes, carry, done = [], [], (params, opt_state), 0
    with tqdm(total=steps, desc=desc, unit="step", disable=not progress) as bar:
        while done < steps:
            num = min(chunk, steps - done)
            key, sub = jax.random.split(key)
            if num != chunk:  # the last, shorter chunk compiles once more
                carry, (loss, aux) = jax.jit(lambda c, ks: jax.lax.scan(one, c, ks))(
                    carry, jax.random.split(sub, num))
            else:
                carry, (loss, aux) = run(carry, jax.random.split(sub, num))
            loss = np.asarray(loss)
            losses.append(loss)
            auxes.append(np.asarray(aux))
            done += num
            bar.update(num)
            bar.set_postfix({"loss": f"{np.nanmean(loss):.4f}"})
    if has_aux:
        return carry[0], np.concatenate(losses), np.concatenate(auxes)
    return carry[0], np.concatenate(losses)


def fit_reverse(chain: Chain, params: dict, log_target: Callable, *, key: Array,
                steps: int = 1000, batch_size: int = 256, learning_rate: float = 1e-3,
                optimizer: Optional[optax.GradientTransformation] = None,
                n_samples: int = 4096, progress: bool = True, chunk: int = 50) -> ReverseFit:
    """Fit an SNF to an unnormalised target by the reverse path KL (Wu et al. 2020, eq. 9).

    Loss per step: mean over ``batch_size`` forward paths of ``-log w``, ``log w =
    log gamma(x_T) - log N(x_0) + sum_t log_ratio_t``. Afterwards ``n_samples`` fresh paths
    give samples, importance weights, the ESS and ``log Z`` with its standard error.

    Args:
      chain: ``nj.snf.chain([...])``.
      params: ``chain.init(key)``.
      log_target: unnormalised log-density of ONE event, ``(dim,) -> ()``; JAX-traceable
        and differentiable (Langevin/MALA layers and training use its gradient).
      key: PRNG key.
      steps: optimisation steps (0: evaluate only).
      batch_size: paths per step.
      learning_rate: Adam's initial rate (cosine decay to a tenth), when no ``optimizer``.
      optimizer: an optax transformation instead of the default.
      n_samples: paths drawn for the returned samples and estimates.
      progress: show a tqdm bar.
      chunk: steps per compiled call (the bar updates between calls).
    """
    _check_chain(chain)
    _check_positive_int(batch_size, "batch_size")
    _check_positive_int(n_samples, "n_samples")
    _check_positive_int(chunk, "chunk")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"steps: expected an integer >= 0, got {steps!r}")
    k_check, k_fit, k_eval = jax.random.split(key, 3)
    check_log_target(log_target, chain, params, k_check)

    def loss_fn(p, k):
        _, lw = sample_paths(chain, p, k, batch_size, log_target)
        return -jnp.mean(lw), jax.lax.stop_gradient(importance(lw).ess)

    losses, batch_ess = np.zeros(0), np.zeros(0)
    if steps > 0:
        params, losses, batch_ess = _train(loss_fn, params, k_fit, steps,
                                           _optimizer(optimizer, learning_rate, steps),
                                           progress, "snf reverse", chunk, has_aux=True)
    samples, lw = jax.jit(lambda p, k: sample_paths(chain, p, k, n_samples, log_target))(
        params, k_eval)
    imp = importance(lw)
    return ReverseFit(params, samples, lw, imp.weights, imp.ess, imp.log_z, imp.log_z_se,
                      losses, batch_ess)


def fit_forward(chain: Chain, params: dict, x, *, key: Array, steps: int = 1000,
                batch_size: int = 256, learning_rate: float = 1e-3,
                optimizer: Optional[optax.GradientTransformation] = None,
                log_target: Optional[Callable] = None, progress: bool = True,
                chunk: int = 50) -> tuple[dict, np.ndarray]:
    """Fit an SNF to data by the forward path KL (Hagemann et al. 2021, section 3): maximise
    the ELBO ``E_R[log N(x_0) - sum_t log_ratio_t]`` of ``log p(x)`` over minibatches,
    the reverse chain started at the data.

    Langevin and Metropolis layers need a density to move towards: pass ``log_target``
    (a known energy, Wu et al.'s training by example) or use only bijectors and
    ``vae_layer``. Evaluate with ``nj.snf.log_prob_bound``.

    Args:
      chain: ``nj.snf.chain([...])``.
      params: ``chain.init(key)``.
      x: data ``(n, dim)``.
      key: PRNG key.
      steps: optimisation steps.
      batch_size: rows per step (drawn with replacement).
      learning_rate: Adam's initial rate (cosine decay to a tenth), when no ``optimizer``.
      optimizer: an optax transformation instead of the default.
      log_target: unnormalised log-density of one event for the MCMC layers, or None.
      progress: show a tqdm bar.
      chunk: steps per compiled call.

    Returns:
      ``(params, losses)``, losses ``(steps,)``: minus the batch ELBO.
    """
    _check_chain(chain)
    _check_positive_int(steps, "steps")
    _check_positive_int(batch_size, "batch_size")
    _check_positive_int(chunk, "chunk")
    x = jnp.asarray(x)
    if x.ndim != 2 or x.shape[1] != chain.dim:
        raise ValueError(f"x: expected data of shape (n, {chain.dim}), got {tuple(x.shape)}")
    if not bool(jnp.all(jnp.isfinite(x))):
        raise ValueError("x: the data hold NaN or inf values; drop or impute those rows")
    k_check, k_fit = jax.random.split(key)
    for layer in chain.layers:  # a missing log_target is named before any work
        from nitsjax.snf.chain import _log_pi

        _log_pi(layer, log_target)
    if log_target is not None:
        check_log_target(log_target, chain, params, k_check)
    n = x.shape[0]

    def loss_fn(p, k):
        ki, kp = jax.random.split(k)
        rows = x[jax.random.randint(ki, (batch_size,), 0, n)]
        elbo = jax.vmap(lambda xi, kk: reverse_path(chain, p, xi, kk, log_target))(
            rows, jax.random.split(kp, batch_size))
        return -jnp.mean(elbo)

    return _train(loss_fn, params, k_fit, steps, _optimizer(optimizer, learning_rate, steps),
                  progress, "snf forward", chunk)


__all__ = ["ReverseFit", "check_log_target", "fit_forward", "fit_reverse"]
