"""Covariance-dual solver of trirl.trpl vs. jaxopt L-BFGS on the same instances.

Solves the KL covariance projection for N random state-dependent 6-d diagonal Gaussians
(all violating the bound, as when the layer is actually needed) with

* trirl.trpl: closed-form bracket + fixed-count safeguarded Newton (``lax.fori_loop``);
* jaxopt.LBFGS on Otto et al.'s dual g(eta) (their C++ ``dual``: eta clamped at 0,
  gradient ``bound - KL``), vmapped over instances, as in the TRIRL authors' code.

Both are jit-compiled; timings are the median of several ``block_until_ready`` runs.
Prints the time ratio and the largest |eta_newton - eta_lbfgs| (and the constraint
residuals, to show which side the difference comes from).

Usage: python benchmarks/trpl_solver.py [--n 4096] [--dim 6] [--repeats 20] [--x64]
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=4096)
    parser.add_argument("--dim", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--bound", type=float, default=1e-3)
    parser.add_argument("--lbfgs-maxiter", type=int, default=100)
    parser.add_argument("--lbfgs-tol", type=float, default=1e-9)
    parser.add_argument("--x64", action="store_true", help="float64 instead of float32")
    args = parser.parse_args()
    jax.config.update("jax_enable_x64", args.x64)

    import jaxopt  # noqa: E402  (after the x64 switch)

    from trirl import trpl

    dtype = jnp.float64 if args.x64 else jnp.float32
    rng = np.random.default_rng(0)
    old_std = np.exp(rng.normal(scale=0.5, size=(args.n, args.dim)))
    # log-std steps of 0.05-0.5 per dimension: KL from ~bound to ~100x bound
    std = old_std * np.exp(rng.normal(size=(args.n, args.dim)) * rng.uniform(0.05, 0.5, (args.n, 1)))
    std, old_std = jnp.asarray(std, dtype), jnp.asarray(old_std, dtype)
    bound = jnp.asarray(args.bound, dtype)
    active = np.asarray(trpl.cov_kl(std, old_std) > bound)

    @jax.jit
    def newton(std, old_std):
        proj = trpl.project(jnp.zeros_like(std), std, jnp.zeros_like(std), old_std, 1.0, bound)
        return proj.eta_cov

    def otto_dual(eta, std, old_std):
        # value and gradient exactly as DiagCovOnlyKLProjection::dual (omega_offset = 1)
        eta = jnp.maximum(eta, 0.0)
        old_prec, prec = 1.0 / old_std ** 2, 1.0 / std ** 2
        new_prec = (eta * old_prec + prec) / (eta + 1.0)
        old_logdet, new_logdet = -jnp.sum(jnp.log(old_prec)), -jnp.sum(jnp.log(new_prec))
        value = eta * bound - 0.5 * eta * old_logdet + 0.5 * (eta + 1.0) * new_logdet
        kl = 0.5 * (old_logdet - new_logdet + jnp.sum(old_prec / new_prec) - std.shape[-1])
        return value, bound - kl

    solver = jaxopt.LBFGS(fun=otto_dual, value_and_grad=True, maxiter=args.lbfgs_maxiter,
                          tol=args.lbfgs_tol)

    def lbfgs_run(std, old_std):
        def one(s, so):
            eta, state = solver.run(jnp.zeros((), dtype), s, so)
            return jnp.where(trpl.cov_kl(s, so) > bound, jnp.maximum(eta, 0.0), 0.0), state.iter_num
        return jax.vmap(one)(std, old_std)

    lbfgs = jax.jit(lambda std, old_std: lbfgs_run(std, old_std)[0])
    lbfgs_iters = np.asarray(jax.jit(lbfgs_run)(std, old_std)[1])

    def timed(fn):
        jax.block_until_ready(fn(std, old_std))  # compile
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            jax.block_until_ready(fn(std, old_std))
            times.append(time.perf_counter() - t0)
        return float(np.median(times)), np.asarray(fn(std, old_std))

    t_newton, eta_newton = timed(newton)
    t_lbfgs, eta_lbfgs = timed(lbfgs)

    def residual(eta):  # |KL(Sigma~(eta) || Sigma_old) - bound| / bound on active instances
        e = jnp.asarray(eta)[:, None]
        new_prec = (e / old_std ** 2 + 1.0 / std ** 2) / (1.0 + e)
        kl = np.asarray(trpl.cov_kl(jnp.sqrt(1.0 / new_prec), old_std))
        return np.max(np.abs(kl[active] - args.bound)) / args.bound

    print(f"device={jax.devices()[0].platform} dtype={np.dtype(dtype).name} n={args.n} d={args.dim} "
          f"bound={args.bound:g} active={active.sum()}/{args.n} repeats={args.repeats}")
    print(f"newton ({trpl._NEWTON_ITERS} iters):  {t_newton * 1e3:9.3f} ms  (median)")
    print(f"jaxopt.LBFGS (maxiter={args.lbfgs_maxiter}, tol={args.lbfgs_tol:g}): {t_lbfgs * 1e3:9.3f} ms  (median); "
          f"iterations mean {lbfgs_iters.mean():.1f}, max {lbfgs_iters.max()}")
    print(f"speed-up lbfgs/newton: {t_lbfgs / t_newton:.1f}x")
    print(f"max |eta_newton - eta_lbfgs|: {np.max(np.abs(eta_newton - eta_lbfgs)):.3e} "
          f"(max eta {np.max(eta_newton):.3g})")
    print(f"max relative constraint residual: newton {residual(eta_newton):.2e}, lbfgs {residual(eta_lbfgs):.2e}")


if __name__ == "__main__":
    main()
