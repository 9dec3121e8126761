"""``trirl learn``: TRIRL (paper Algorithm 2) from demonstrations (``trirl.learn``)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("learn")
@click.option("--env", "env_name", default="point_maze", show_default=True,
              help="Environment name (see `trirl envs`).")
@click.option("--demos", "demos_path", type=click.Path(path_type=Path), default=None,
              help="Demonstration file (.npz) [default: the bundled demos of the env].")
@click.option("--steps", type=int, default=None,
              help="Environment steps per seed [default: the env's preset].")
@click.option("--seeds", type=int, default=1, show_default=True,
              help="Independent seeds trained together (vmap).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--run-dir", type=click.Path(path_type=Path), default=None,
              help="Where to write the run [default: runs/<env>-trirl-<time>].")
@click.option("--resume", type=click.Path(path_type=Path), default=None,
              help="Continue the run in this directory from its last checkpoint "
                   "(its own settings and demos; other options are ignored).")
@click.option("--variant", type=click.Choice(["max_eta", "tr_loss", "retrospective_eta",
                                              "no_fit"]),
              default="max_eta", show_default=True,
              help="How the reward correction's eta is obtained (paper Sec. 4.3).")
@click.option("--inputs", type=click.Choice(["sa", "ss", "sas"]), default="sa",
              show_default=True,
              help="Discriminator inputs: D(s,a), or D(s,s') for observation-only demos.")
@click.option("--reward-model", type=click.Choice(["fitted", "features"]), default="fitted",
              show_default=True,
              help="fitted: buffer + fitted reward (paper Sec. 4.2); features: not implemented yet.")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="TRIRL setting, e.g. --set eps=0.5, --set ppo.learning_rate=1e-4, "
                   "--set disc.num_steps=30, --set trust_region.mean_bound=0.002, "
                   "--set fit.num_steps=50 (repeatable).")
@click.option("--env-set", multiple=True, metavar="KEY=VALUE",
              help="Environment setting, e.g. --env-set episode_length=200.")
@click.option("--checkpoint-every", type=int, default=50, show_default=True)
def learn(env_name, demos_path, steps, seeds, seed, run_dir, resume, variant, inputs,
          reward_model, settings, env_set, checkpoint_every):
    """Learn a reward and a policy from demonstrations with TRIRL."""
    # Imported here, not at module level: trirl.cli.main imports this module.
    from trirl.cli.main import _friendly

    _friendly(_learn)(env_name, demos_path, steps, seeds, seed, run_dir, resume, variant,
                      inputs, reward_model, settings, env_set, checkpoint_every)


def _learn(env_name, demos_path, steps, seeds, seed, run_dir, resume, variant, inputs,
           reward_model, settings, env_set, checkpoint_every):
    from trirl import envs, learn as learn_lib
    from trirl.expert import parse_overrides

    if resume:
        learn_lib.resume(resume)
        click.echo(f"run: {resume}")
        return
    if env_name not in envs.names():
        envs.make(env_name)  # raises the standard unknown-env error
    env_cls = envs.registry()[env_name]
    run = learn_lib.train(
        env_name, demos=demos_path, run_dir=run_dir, steps=steps, seeds=seeds, seed=seed,
        variant=variant, inputs=inputs, reward_model=reward_model, settings=learn_lib.parse_settings(settings),
        env_overrides=parse_overrides(env_set, env_cls.config_class, env_name),
        checkpoint_every=checkpoint_every)
    click.echo(f"run: {run}")
