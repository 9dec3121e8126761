"""``trirl learn``: TRIRL (paper Algorithm 2) from demonstrations (``trirl.learn``), or
one of the adversarial baselines on the same machinery (``--algo``, ``trirl.baselines``)."""

from __future__ import annotations

from pathlib import Path

import click

from trirl.choices import ALGOS, INPUTS, REWARD_MODELS, VARIANTS
from trirl.cli.options import NEW_RUN_BACKEND, backend_option, friendly


@click.command("learn")
@click.option("--demos", "demos_path", type=click.Path(path_type=Path), default=None,
              help="Demonstration file (.npz) [default: the bundled demos of the env].")
@click.option("--env", "env_name", default=None,
              help="Environment name (see `trirl envs`) [default: the one the demos were "
                   "recorded on; point_maze without --demos].")
@click.option("--algo", type=click.Choice(ALGOS), default=None,
              help="trirl [default], or a baseline on the same PPO, discriminator and "
                   "absorbing-state handling (paper App. C.1): gail (reward variant: --set "
                   "gail_reward=log_d|neg_log_one_minus_d|logit), airl (exports its "
                   "unshaped g(s)), amp.")
@click.option("--variant", type=click.Choice(VARIANTS), default=None,
              help="How the reward correction's eta is obtained (paper Sec. 4.3) [default: "
                   "max_eta; tr_loss for --reward-model features on Point Maze, its preset].")
@click.option("--k", "capacity", type=int, default=None,
              help="Discriminator buffer size k [default: 100, paper 80-120].")
@click.option("--eps", type=float, default=None,
              help="Reward step size epsilon [default: 0.6, paper 0.45-0.75].")
@click.option("--beta", type=float, default=None,
              help="Inverse temperature beta = 1 / PPO entropy coefficient [default: 1000].")
@click.option("--inputs", type=click.Choice(INPUTS), default=None,
              help="Discriminator inputs: D(s,a) [default], D(s,s') for observation-only "
                   "demos, or D(s,a,s').")
@click.option("--reward-model", type=click.Choice(REWARD_MODELS), default=None,
              help="fitted [default]: buffer of discriminators + fitted reward (paper Sec. "
                   "4.2); features: encoder of the env's base features + linear reward, the "
                   "transferable model (paper Sec. 5.1).")
@click.option("--steps", type=int, default=None,
              help="Environment steps per seed [default: the env's preset].")
@click.option("--seeds", type=int, default=1, show_default=True,
              help="Independent seeds trained together (vmap).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--run-dir", type=click.Path(path_type=Path), default=None,
              help="Where to write the run [default: runs/<env>-trirl-<time>].")
@click.option("--resume", type=click.Path(path_type=Path), default=None,
              help="Continue the run in this directory from its last checkpoint "
                   "(its own settings and demos; other options are ignored, but --steps "
                   "N extends its budget to N).")
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="TOML file of settings: top-level TRIRL keys (eps, capacity, variant, "
                   "...), tables [ppo] [trust_region] [disc] [fit] [env]. --set and the "
                   "flags above override it.")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="TRIRL setting, e.g. --set eps=0.5, --set ppo.learning_rate=1e-4, "
                   "--set disc.num_steps=30, --set trust_region.mean_bound=0.002, "
                   "--set fit.num_steps=50 (repeatable).")
@click.option("--env-set", multiple=True, metavar="KEY=VALUE",
              help="Environment setting, e.g. --env-set episode_length=200.")
@click.option("--checkpoint-every", type=int, default=50, show_default=True)
@backend_option(NEW_RUN_BACKEND)
def learn(**options):
    """Learn a reward and a policy from demonstrations with TRIRL (or --algo gail, airl,
    amp: the baselines on the same machinery)."""
    friendly(_learn)(**options)


def flag_settings(variant=None, capacity=None, eps=None, beta=None, inputs=None,
                  reward_model=None, algo=None) -> dict:
    """The dedicated flags as settings (``--beta`` is 1 / ppo.entropy_coef)."""
    from trirl.errors import TrirlError

    own = {name: value for name, value in (("algo", algo), ("variant", variant),
                                           ("capacity", capacity),
                                           ("eps", eps), ("inputs", inputs),
                                           ("reward_model", reward_model))
           if value is not None}
    out = {"": own} if own else {}
    if beta is not None:
        if not beta > 0:
            raise TrirlError(f"--beta must be > 0 (got {beta}; paper: 200 - 12500)")
        out["ppo"] = {"entropy_coef": 1.0 / beta}
    return out


def _learn(demos_path, env_name, algo, variant, capacity, eps, beta, inputs, reward_model, steps,
           seeds, seed, run_dir, resume, config_path, settings, env_set, checkpoint_every,
           backend):
    from trirl import envs, learn as learn_lib
    from trirl.errors import TrirlError
    from trirl.settings import (merge_settings, parse_overrides, parse_settings,
                                read_config_file)

    if resume:
        learn_lib.resume(resume, backend=backend, steps=steps)
        click.echo(f"run: {resume}")
        return
    # Precedence: paper defaults < env preset < --config < --set < dedicated flags.
    file_settings, file_env = {}, ()
    if config_path is not None:
        file_settings, file_env = read_config_file(config_path)
    merged = merge_settings(
        file_settings, parse_settings(settings),
        flag_settings(variant, capacity, eps, beta, inputs, reward_model, algo))
    env_name = env_name or learn_lib.default_env(demos_path)
    if env_name not in envs.names():
        envs.make(env_name)  # raises the standard unknown-env error
    env_cls = envs.registry()[env_name]
    env_overrides = {}
    if file_env:
        try:
            env_overrides.update(parse_overrides(file_env, env_cls.config_class, env_name))
        except TrirlError as exc:
            raise TrirlError(f"{config_path}: [env] {exc}") from None
    env_overrides.update(parse_overrides(env_set, env_cls.config_class, env_name))
    run = learn_lib.train(
        env_name, demos=demos_path, run_dir=run_dir, steps=steps, seeds=seeds, seed=seed,
        settings=merged, env_overrides=env_overrides, checkpoint_every=checkpoint_every,
        backend=backend)
    click.echo(f"run: {run}")
