"""``trirl compare``: the evaluation grid (``trirl.compare``) and its report
(``trirl.compare_report``)."""

from __future__ import annotations

from pathlib import Path

import click

from trirl.cli.options import backend_option, friendly


@click.command("compare")
@click.option("--envs", default="point_maze", show_default=True,
              help="Comma-separated environments (see `trirl envs`).")
@click.option("--algos", default="trirl,gail,airl,amp", show_default=True,
              help="Comma-separated algorithms: trirl, gail, airl, amp, trirl_features "
                   "(TRIRL with --reward-model features) and oracle (PPO on the true task "
                   "reward with TRIRL's policy settings and steps).")
@click.option("--seeds", type=int, default=5, show_default=True,
              help="Seeds per cell, trained together (vmap) in one run.")
@click.option("--seed", type=int, default=0, show_default=True, help="First seed.")
@click.option("--steps", type=int, default=None,
              help="Environment steps per seed [default: each env's preset].")
@click.option("--out", type=click.Path(path_type=Path), default=Path("runs/compare"),
              show_default=True, help="Grid directory; rerun with the same --out to resume.")
@click.option("--demos", multiple=True, metavar="ENV=FILE",
              help="Demonstrations of ENV [default: its bundled demos], repeatable; also "
                   "gives a transfer target's reference returns.")
@click.option("--retrain", is_flag=True,
              help="Export each seed's reward and retrain a fresh policy on it (Table 1's "
                   "Retraining column).")
@click.option("--transfer", multiple=True, metavar="ENV=TARGET",
              help="Optimise each seed's reward on TARGET, e.g. "
                   "point_maze=point_maze_flipped (repeatable).")
@click.option("--retrain-steps", type=int, default=None,
              help="Environment steps of each retrain/transfer run [default: --steps, else "
                   "the reward's training budget].")
@click.option("--retrain-set", multiple=True, metavar="KEY=VALUE",
              help="PPO setting of every retrain/transfer run, as `trirl retrain --set` "
                   "(e.g. init_std=0.2).")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="Learner setting for every cell, as `trirl learn --set`.")
@click.option("--env-set", multiple=True, metavar="KEY=VALUE",
              help="Environment setting for every env, as `trirl learn --env-set`.")
@click.option("--checkpoint-every", type=int, default=50, show_default=True)
@click.option("--in-process", is_flag=True,
              help="Run the cells in this process instead of one child process each: "
                   "faster for tiny grids, but the recorded peak memory is then this "
                   "process's high-water mark (an upper bound).")
@click.option("--bootstrap-reps", type=int, default=50_000, show_default=True,
              help="Bootstrap resamples of the confidence intervals.")
@click.option("--report-only", type=click.Path(path_type=Path), default=None,
              metavar="DIR", help="Only re-render DIR/report from its finished cells.")
@backend_option("auto")
def compare(**options):
    """Train and evaluate a grid of environments x algorithms (seeds vmapped per cell),
    resumably, and write a report: per-env normalized scores, IQM with 95% stratified
    bootstrap intervals, learning curves, wall time and peak memory."""
    friendly(_compare)(**options)


def _compare(envs, algos, seeds, seed, steps, out, demos, retrain, transfer, retrain_steps,
             retrain_set, settings, env_set, checkpoint_every, in_process, bootstrap_reps,
             report_only, backend):
    from trirl import compare as compare_lib
    from trirl import compare_report

    if report_only is not None:
        summary = compare_report.write(report_only)
    else:
        config = compare_lib.CompareConfig(
            envs=compare_lib.parse_list(envs, "--envs"),
            algos=compare_lib.parse_list(algos, "--algos"), seeds=seeds, seed=seed,
            steps=steps,
            demos=compare_lib.parse_pairs(demos, "--demos", "point_maze=demos.npz"),
            retrain=retrain,
            transfer=compare_lib.parse_pairs(transfer, "--transfer",
                                             "point_maze=point_maze_flipped"),
            settings=tuple(settings), env_settings=tuple(env_set),
            retrain_steps=retrain_steps, retrain_settings=tuple(retrain_set),
            checkpoint_every=checkpoint_every, backend=backend, isolate=not in_process,
            bootstrap_reps=bootstrap_reps)
        summary = compare_lib.run_grid(config, out, log=lambda m: click.echo(m, err=True))
    click.echo(summary["markdown"], nl=False)
    click.echo(f"wrote {summary['report_dir']}/summary.md, summary.json, learning_curves.png")
