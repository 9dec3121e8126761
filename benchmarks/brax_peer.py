"""Peer PPO: brax's ``ppo.train`` on a trirl env (same MJX model), timed end to end.

Runs ``brax.training.agents.ppo.train.train`` on ``TrirlBraxEnv`` (benchmarks/
brax_adapter.py) with the settings trirl's PPO uses by default (3 x 256 tanh policy and
value MLPs, observation normalisation, clip 0.2, gamma 0.99, GAE lambda 0.95, no
entropy bonus, 4 epochs, Adam 3e-4, grad-norm clip 1.0, 512 transitions per minibatch)
and reports env steps per second.

Timing: brax calls ``progress_fn`` once before training (step 0, after compiling and
running the initial evaluation) and once after each training epoch (each followed by an
evaluation of ``num_eval_envs`` episodes). The first epoch also compiles the training
step, so throughput is measured from the *second* progress call (end of epoch 1) to the
last one: ``steps_per_s = (steps_last - steps_1) / (t_last - t_1)``. That is end to end:
rollouts, updates, the per-epoch evaluation and host round trips. brax's own
``training/sps`` (epoch time only, no evaluation) is reported as ``train_sps`` (median
over the epochs after the first). ``compile_s`` is how much longer epoch 1 took than
the steady rate predicts.

brax lives in its own virtualenv (benchmarks/README.md, "Peer: brax"):

    /work/venvs/brax/bin/python benchmarks/brax_peer.py --env point_maze \
        --num-envs 256 --total-steps 2000000
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from brax.training.agents.ppo import networks as ppo_networks  # noqa: E402
from brax.training.agents.ppo import train as ppo  # noqa: E402

from brax_adapter import TrirlBraxEnv  # noqa: E402


def run_brax(env_name: str = "point_maze", num_envs: int = 256, unroll_length: int = 16,
             hidden: tuple[int, ...] = (256, 256, 256), minibatch_size: int = 512,
             num_minibatches: int | None = None, num_updates_per_batch: int = 4,
             learning_rate: float = 3e-4, max_grad_norm: float | None = 1.0,
             total_steps: int = 2_000_000, num_evals: int = 11, num_eval_envs: int = 128,
             deterministic_eval: bool = False, seed: int = 0, verbose: bool = True,
             **env_overrides) -> dict:
    """Train brax PPO on trirl env ``env_name`` and time it.

    Args:
      num_envs: parallel envs in the rollout.
      unroll_length: steps per env per rollout segment (brax's GAE/loss window).
      minibatch_size: transitions per gradient step; brax counts minibatches in
        trajectories of ``unroll_length``, so ``batch_size = minibatch_size //
        unroll_length`` sequences.
      num_minibatches: minibatches per training step; default: one rollout of
        ``num_envs * unroll_length`` transitions split into 512-transition minibatches
        (``num_envs * unroll_length // minibatch_size``), as trirl's PPO does.
      num_updates_per_batch: epochs over each batch.
      total_steps: env steps to train (brax rounds up to whole epochs).
      num_evals: progress calls (1 before training + ``num_evals - 1`` epochs); >= 3 so
        there are at least two post-compile calls to time between.

    Returns:
      dict with steps_per_s, train_sps, wall_s, compile_s, final_return (last eval's
      mean episode return), initial_return, final_success, final_episode_length,
      total_steps, config, and history [(step, time_s, return)].
    """
    if num_evals < 3:
        raise ValueError("num_evals must be >= 3 (step 0, compile epoch, then timed epochs)")
    if minibatch_size % unroll_length:
        raise ValueError(f"minibatch_size={minibatch_size} must be a multiple of "
                         f"unroll_length={unroll_length} (brax minibatches are sequences)")
    batch_size = minibatch_size // unroll_length
    if num_minibatches is None:
        num_minibatches = max(1, num_envs * unroll_length // minibatch_size)
    if (batch_size * num_minibatches) % num_envs:
        raise ValueError(f"brax needs batch_size*num_minibatches = {batch_size}*{num_minibatches}"
                         f" to be a multiple of num_envs={num_envs}")

    env = TrirlBraxEnv(env_name, **env_overrides)
    network_factory = functools.partial(
        ppo_networks.make_ppo_networks,
        policy_hidden_layer_sizes=tuple(hidden), value_hidden_layer_sizes=tuple(hidden),
        activation=jax.nn.tanh)
    config = dict(env=env_name, num_envs=num_envs, unroll_length=unroll_length,
                  batch_size=batch_size, num_minibatches=num_minibatches,
                  minibatch_transitions=minibatch_size, num_updates_per_batch=num_updates_per_batch,
                  hidden=list(hidden), learning_rate=learning_rate, max_grad_norm=max_grad_norm,
                  episode_length=env.episode_length, num_evals=num_evals,
                  num_eval_envs=num_eval_envs, deterministic_eval=deterministic_eval, seed=seed,
                  total_steps_requested=total_steps, env_overrides=env_overrides,
                  device=str(jax.devices()[0]))

    calls: list[tuple[float, int, dict]] = []

    def progress_fn(step, metrics):
        now = time.perf_counter()
        calls.append((now, int(step), {k: float(np.asarray(v)) for k, v in metrics.items()}))
        if verbose:
            m = calls[-1][2]
            print(f"[brax] step {int(step):>10d}  t={now - t0:8.1f}s  "
                  f"return {m.get('eval/episode_reward', float('nan')):8.2f}  "
                  f"success {m.get('eval/episode_success', float('nan')):.2f}  "
                  f"len {m.get('eval/avg_episode_length', float('nan')):6.1f}  "
                  f"train_sps {m.get('training/sps', float('nan')):9.0f}", flush=True)

    t0 = time.perf_counter()
    ppo.train(
        environment=env, num_timesteps=total_steps, episode_length=env.episode_length,
        action_repeat=1, num_envs=num_envs, unroll_length=unroll_length,
        batch_size=batch_size, num_minibatches=num_minibatches,
        num_updates_per_batch=num_updates_per_batch, learning_rate=learning_rate,
        max_grad_norm=max_grad_norm, entropy_cost=0.0, discounting=0.99, gae_lambda=0.95,
        clipping_epsilon=0.2, normalize_observations=True, normalize_advantage=True,
        vf_loss_coefficient=0.5, reward_scaling=1.0, network_factory=network_factory,
        num_evals=num_evals, num_eval_envs=num_eval_envs,
        deterministic_eval=deterministic_eval, seed=seed, progress_fn=progress_fn)
    wall_s = time.perf_counter() - t0

    (t1, s1, _), (tn, sn, last) = calls[1], calls[-1]
    steps_per_s = (sn - s1) / (tn - t1)
    epoch1_s = calls[1][0] - calls[0][0]
    compile_s = epoch1_s - (s1 - calls[0][1]) / steps_per_s
    train_sps = float(np.median([c[2]["training/sps"] for c in calls[2:]]))
    return dict(
        steps_per_s=steps_per_s, train_sps=train_sps, wall_s=wall_s, compile_s=compile_s,
        final_return=last.get("eval/episode_reward"),
        initial_return=calls[0][2].get("eval/episode_reward"),
        final_success=last.get("eval/episode_success"),
        final_episode_length=last.get("eval/avg_episode_length"),
        total_steps=sn, config=config,
        history=[(s, round(t - t0, 2), m.get("eval/episode_reward")) for t, s, m in calls])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--env", default="point_maze")
    p.add_argument("--num-envs", type=int, default=256)
    p.add_argument("--unroll-length", type=int, default=16)
    p.add_argument("--hidden", type=int, nargs="+", default=[256, 256, 256])
    p.add_argument("--minibatch-size", type=int, default=512, help="transitions per minibatch")
    p.add_argument("--num-minibatches", type=int, default=None)
    p.add_argument("--epochs", type=int, default=4, help="num_updates_per_batch")
    p.add_argument("--learning-rate", type=float, default=3e-4)
    p.add_argument("--max-grad-norm", type=float, default=1.0)
    p.add_argument("--total-steps", type=int, default=2_000_000)
    p.add_argument("--num-evals", type=int, default=11)
    p.add_argument("--num-eval-envs", type=int, default=128)
    p.add_argument("--deterministic-eval", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="also write the result dict here")
    a = p.parse_args()
    res = run_brax(a.env, num_envs=a.num_envs, unroll_length=a.unroll_length,
                   hidden=tuple(a.hidden), minibatch_size=a.minibatch_size,
                   num_minibatches=a.num_minibatches, num_updates_per_batch=a.epochs,
                   learning_rate=a.learning_rate, max_grad_norm=a.max_grad_norm,
                   total_steps=a.total_steps, num_evals=a.num_evals,
                   num_eval_envs=a.num_eval_envs, deterministic_eval=a.deterministic_eval,
                   seed=a.seed)
    print(json.dumps(res, indent=1))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
