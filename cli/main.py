"""The ``trirl`` command line. It only maps flags to configs and library calls.

Every user error surfaces as one line ``trirl: error: ...`` and exit status 2.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from trirl.cli.options import NEW_RUN_BACKEND, RUN_BACKEND, backend_option
from trirl.cli.options import friendly as _friendly
from trirl.errors import TrirlError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="trirl")
def main():
    """Trust Region Inverse Reinforcement Learning on MuJoCo (MJX or C)."""


@main.command("envs")
@_friendly
def envs_cmd():
    """List the registered environments."""
    from rich.console import Console
    from rich.table import Table

    from trirl import envs

    table = Table(title="trirl environments")
    for col in ("name", "obs", "act", "dt (s)", "horizon", "base features", "description"):
        table.add_column(col)
    for name, cls in sorted(envs.registry().items()):
        # The features model's inputs, by the names --set feature_names=... takes.
        features = ", ".join(term[0] for term in cls.feature_terms) or "-"
        try:
            env = envs.make(name)
        except TrirlError as exc:   # a robot model not fetched yet: say how, list the rest
            table.add_row(name, "-", "-", "-", "-", features, f"{cls.description} ({exc})")
            continue
        table.add_row(name, str(env.observation_size), str(env.action_size), f"{env.dt:g}",
                      str(env.episode_length), features, cls.description)
    Console().print(table)


@main.command()
@click.option("--env", "env_name", default="point_maze", show_default=True,
              help="Environment name (see `trirl envs`).")
@click.option("--steps", type=int, default=None, help="Environment steps per seed "
              "[default: the env's preset].")
@click.option("--seeds", type=int, default=1, show_default=True,
              help="Independent seeds trained together (vmap).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--run-dir", type=click.Path(path_type=Path), default=None,
              help="Where to write the run [default: runs/<env>-expert-<time>].")
@click.option("--resume", type=click.Path(path_type=Path), default=None,
              help="Continue the run in this directory from its last checkpoint "
                   "(with --steps N: extended to N steps).")
@click.option("--set", "ppo_set", multiple=True, metavar="KEY=VALUE",
              help="PPO setting, e.g. --set learning_rate=1e-4 (repeatable).")
@click.option("--env-set", multiple=True, metavar="KEY=VALUE",
              help="Environment setting, e.g. --env-set episode_length=200.")
@click.option("--checkpoint-every", type=int, default=50, show_default=True)
@backend_option(NEW_RUN_BACKEND)
@_friendly
def expert(env_name, steps, seeds, seed, run_dir, resume, ppo_set, env_set, checkpoint_every,
           backend):
    """Train a PPO expert on the environment's true reward."""
    from trirl import envs, expert as expert_lib
    from trirl.ppo import PPOConfig
    from trirl.settings import parse_overrides

    if resume:
        expert_lib.resume_expert(resume, backend=backend, steps=steps)
        click.echo(f"run: {resume}")
        return
    if env_name not in envs.names():
        envs.make(env_name)  # raises the standard unknown-env error
    env_cls = envs.registry()[env_name]
    run = expert_lib.train_expert(
        env_name, run_dir=run_dir, steps=steps, seeds=seeds, seed=seed,
        ppo_overrides=parse_overrides(ppo_set, PPOConfig, "PPO"),
        env_overrides=parse_overrides(env_set, env_cls.config_class, env_name),
        checkpoint_every=checkpoint_every, backend=backend)
    click.echo(f"run: {run}")


class _DefaultCommandGroup(click.Group):
    """A group that hands its arguments to ``default_command`` when the first one is not
    a subcommand name (a path, an option), so ``trirl demos RUN -o out.npz`` keeps
    meaning ``trirl demos record RUN -o out.npz``."""

    def __init__(self, *args, default_command: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.default_command = default_command

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)


@main.group(cls=_DefaultCommandGroup, default_command="record")
def demos():
    """Demonstration files: record them from a trained run (the default: `trirl demos
    RUN -o out.npz` is `trirl demos record RUN -o out.npz`), convert motion capture,
    or write a synthetic G1 gait to try the converter on."""


@demos.command("record")
@click.argument("run", type=click.Path(path_type=Path))
@click.option("--episodes", type=int, default=30, show_default=True)
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="Demo file to write (.npz).")
@click.option("--stochastic", is_flag=True, help="Sample actions instead of the mean action.")
@click.option("--seed-index", type=int, default=0, show_default=True,
              help="Which seed of a multi-seed run.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--drop-terminated", is_flag=True,
              help="Keep only episodes that ran to the time limit: for experts whose "
                   "terminal state is a failure (a fall), not the goal.")
@backend_option(RUN_BACKEND)
@_friendly
def demos_record(run, episodes, output, stochastic, seed_index, seed, drop_terminated, backend):
    """Record demonstrations from a trained policy."""
    from trirl import evaluation

    info = evaluation.record_demos(run, output, episodes=episodes, stochastic=stochastic,
                                   seed_index=seed_index, seed=seed, backend=backend,
                                   drop_terminated=drop_terminated)
    dropped = info.get("dropped_terminated_episodes")
    click.echo(f"wrote {output}: {episodes} episodes, {info['transitions']} transitions, "
               f"expert return {info['expert_return_mean']:.3f} ± {info['expert_return_std']:.3f}"
               f", random {info['random_return_mean']:.3f}"
               + (f" ({dropped} terminated episodes dropped)" if dropped is not None else ""))


@demos.command("convert")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--from", "fmt", type=click.Choice(["loco-mujoco", "arrays", "mjlab"]),
              default="loco-mujoco", show_default=True,
              help="loco-mujoco: a LocoMuJoCo trajectory .npz (qpos, qvel, split_points, "
                   "joint_names, jnt_type, frequency); arrays: an .npz with qpos, qvel in "
                   "the env model's order, fps and optional split_points; mjlab: mjlab / "
                   "BeyondMimic motion .npz files (fps, joint_pos, joint_vel, body_*_w), "
                   "several files, directories of them, or g1-mocap:walk / g1-mocap:run "
                   "(the clips of `trirl assets fetch g1-mocap`).")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="Demo file to write (.npz, observation-only).")
@click.option("--env", "env_name", required=True, help="Environment the demos are for "
              "(see `trirl envs`); its model's joints are matched by name.")
@click.option("--rename", multiple=True, metavar="FILE_JOINT=ENV_JOINT",
              help="Map a joint of the file onto an env joint of another name (repeatable).")
@click.option("--keep-heading", is_flag=True,
              help="mjlab: keep each clip's heading [default: turn it onto the env's "
                   "forward axis +x].")
@click.option("--loop", type=click.Choice(["auto", "always", "never"]), default="auto",
              show_default=True, help="mjlab: repeat clips to fill the env's episodes "
                                      "(auto: clips whose name has _loop).")
@click.option("--whole", is_flag=True,
              help="mjlab: keep whole clips [default: cut each to its steady gait, which "
                   "loops; the G1 clips start and end standing].")
@_friendly
def demos_convert(files, fmt, output, env_name, rename, keep_heading, loop, whole):
    """Convert motion capture into an observation-only demo file: joints mapped by
    name, resampled to the env's control rate (cubic splines, slerp for free-joint
    quaternions), observations computed with MuJoCo (docs/demo-format.md)."""
    from trirl import envs, mocap

    pairs = {}
    for item in rename:
        old, sep, new = item.partition("=")
        if not sep or not old or not new:
            raise TrirlError(f"--rename {item!r}: expected FILE_JOINT=ENV_JOINT")
        pairs[old] = new
    env = envs.make(env_name, backend="c")  # replay runs on MuJoCo C whatever the backend
    result, notes = mocap.convert(list(files), env, fmt=fmt, output=output, rename=pairs,
                                  align=not keep_heading, loop=loop, steady=not whole)
    for note in notes:
        click.echo(f"note: {note}")
    meta = result.metadata["mocap"]
    click.echo(f"wrote {output}: {result.num_episodes} episodes, {result.num_transitions} "
               f"transitions at {meta['resampled_to']:g} Hz for {env_name} "
               f"(from {meta['frames']} frames at {meta['frequency']:g} Hz)")
    if meta["mean_forward_speed"] is not None:
        target = getattr(env.config, "target_speed", None)
        click.echo(f"mean forward speed {meta['mean_forward_speed']:.2f} m/s along +x"
                   + (f" ({env_name} target_speed {target:g})" if target is not None else ""))


@demos.command("synthetic-gait")
@click.option("-o", "--output", type=click.Path(path_type=Path),
              default=Path("g1_gait_locomujoco.npz"), show_default=True,
              help="LocoMuJoCo trajectory file to write.")
@click.option("--speed", type=float, default=1.0, show_default=True, help="Walking speed (m/s).")
@click.option("--seconds", type=float, default=20.0, show_default=True,
              help="Total duration, split evenly over the segments.")
@click.option("--segments", type=int, default=3, show_default=True,
              help="Trajectories, each starting at its own gait phase.")
@click.option("--fps", type=float, default=60.0, show_default=True,
              help="Sampling rate of the file (the converter resamples it).")
@click.option("--step-frequency", type=float, default=1.8, show_default=True,
              help="Steps per second (two per stride).")
@click.option("--seed", type=int, default=0, show_default=True)
@_friendly
def demos_synthetic_gait(output, speed, seconds, segments, fps, step_frequency, seed):
    """Write a synthetic, kinematically generated Unitree G1 walk in LocoMuJoCo's
    trajectory layout (for tests and the quick-start; needs `trirl assets fetch g1`).
    Convert it with `trirl demos convert FILE -o g1_walk.npz --env g1_walk`."""
    from trirl import synthetic_gait

    try:
        motion = synthetic_gait.write(output, speed=speed, seconds=seconds, segments=segments,
                                      fps=fps, step_frequency=step_frequency, seed=seed)
    except ValueError as exc:
        raise TrirlError(str(exc)) from None
    click.echo(f"wrote {output}: {len(motion.split_points) - 1} segments, "
               f"{len(motion.qpos)} frames at {motion.frequency:g} Hz, {speed:g} m/s")


@main.command()
@click.argument("run", type=click.Path(path_type=Path))
@click.option("--episodes", type=int, default=100, show_default=True)
@click.option("--demos", "demos_path", type=click.Path(path_type=Path), default=None,
              help="Demo file whose metadata holds the expert/random returns for the "
                   "normalized score [default: the bundled demos of the env, if any].")
@click.option("--stochastic", is_flag=True, help="Sample actions instead of the mean action.")
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@backend_option(RUN_BACKEND)
@_friendly
def evaluate(run, episodes, demos_path, stochastic, seed, as_json, backend):
    """Mean/std return, success rate and normalized score of a run's policies."""
    from trirl import evaluation

    result = evaluation.evaluate_run(run, episodes=episodes, demos_path=demos_path,
                                     stochastic=stochastic, seed=seed, backend=backend)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{run} on {result['env']} ({episodes} episodes per seed)")
    walks = "forward_distance_mean" in result["per_seed"][0]
    for col in ("seed", "return mean", "return std", "terminated", "normalized score") \
            + (("forward distance (m)",) if walks else ()):
        table.add_column(col)
    for i, r in enumerate(result["per_seed"]):
        score = "-" if r["normalized_score"] is None else f"{r['normalized_score']:.3f}"
        distance = (f"{r['forward_distance_mean']:.1f} ± {r['forward_distance_std']:.1f}",) \
            if walks else ()
        table.add_row(str(i), f"{r['return_mean']:.3f}", f"{r['return_std']:.3f}",
                      f"{r['terminated_fraction']:.1%}", score, *distance)
    Console().print(table)
    if result["reference"]:
        ref = result["reference"]
        click.echo(f"normalized score: expert return {ref['expert_return_mean']:.3f} = 1, "
                   f"random return {ref['random_return_mean']:.3f} = 0 (from {ref['source']})")


@main.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="PNG to write [default: RUN/learning_curve.png].")
@click.option("--metric", default="episode_return", show_default=True)
@_friendly
def plot(runs, output, metric):
    """Learning curve(s) of one or more runs as a PNG."""
    from trirl import plots

    out = plots.learning_curves(list(runs), output, metric)
    click.echo(f"wrote {out}")


def _register_optional_commands() -> None:
    """Commands that live in their own modules (one concept per module)."""
    import importlib

    commands = [("trirl.cli.learn_cmd", "learn"), ("trirl.cli.compare_cmd", "compare"),
                ("trirl.cli.assets_cmd", "assets"), ("trirl.cli.render_cmd", "render")] + [
        ("trirl.cli.reward_cmd", name)
        for name in ("export", "inspect", "retrain", "transfer", "report")]
    for module, name in commands:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            continue
        main.add_command(getattr(mod, name))


_register_optional_commands()

if __name__ == "__main__":
    main()
