"""Evaluating the k buffered discriminators: one vmap vs chunks of members in a lax.map.

TRIRL evaluates its k stacked discriminators on every rollout row once per iteration
(``trirl.reward_buffer.member_logits``). One ``vmap`` over all k is what an accelerator
wants; on a CPU the (k, N, hidden) activations of a full vmap stream through memory, so
``member_logits`` there maps over chunks of ``CPU_MEMBER_CHUNK`` members instead. This
script times both on random members of the default discriminator (3 x 256 tanh), paired
rounds alternating through the variants, and checks that they agree.

    python benchmarks/member_eval.py --k 100 --rows 2585 --rounds 5
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp

from trirl import discriminator as disc

from _report import write_json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--k", type=int, default=100, help="buffer members")
    parser.add_argument("--rows", type=int, default=2585,
                        help="rows (2,560 rollout + 25 absorbing rows at the TRIRL defaults)")
    parser.add_argument("--input-dim", type=int, default=7, help="Point Maze (s, a): 7")
    parser.add_argument("--chunks", default="1,2,4,10", help="members per lax.map step")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args()

    cfg = disc.DiscriminatorConfig()
    keys = jax.random.split(jax.random.PRNGKey(0), args.k)
    params = jax.vmap(lambda key: disc.init(cfg, key, args.input_dim))(keys)
    x = jax.random.normal(jax.random.PRNGKey(1), (args.rows, args.input_dim))

    def one(p):
        return disc.logits(cfg, p, x)

    variants = {"vmap": jax.jit(lambda p: jax.vmap(one)(p))}
    for c in (int(v) for v in args.chunks.split(",")):
        variants[f"map{c}"] = jax.jit(lambda p, c=c: jax.lax.map(one, p, batch_size=c))
    reference = variants["vmap"](params).block_until_ready()
    max_diff = {name: float(jnp.max(jnp.abs(f(params) - reference)))
                for name, f in variants.items()}

    times = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, f in variants.items():
            t0 = time.perf_counter()
            f(params).block_until_ready()
            times[name].append(time.perf_counter() - t0)
    rows = []
    for name in variants:
        ratios = [v / t for v, t in zip(times["vmap"], times[name])]
        rows.append({"variant": name, "ms_median": 1e3 * statistics.median(times[name]),
                     "speedup_vs_vmap_median": statistics.median(ratios),
                     "max_abs_diff_vs_vmap": max_diff[name]})
        print(f"{name:>6}: {rows[-1]['ms_median']:7.0f} ms, {rows[-1]['speedup_vs_vmap_median']:.2f}x "
              f"vmap, max |diff| {max_diff[name]:.1e}")
    write_json(args.json, {"k": args.k, "rows": args.rows, "input_dim": args.input_dim,
                           "rounds": args.rounds}, rows)


if __name__ == "__main__":
    main()
