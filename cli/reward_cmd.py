"""Reward-file commands: ``export``, ``inspect``, ``retrain``, ``transfer``, ``report``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from trirl.cli.options import NEW_RUN_BACKEND, backend_option
from trirl.cli.options import friendly as _friendly


@click.command("export")
@click.argument("run", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="File to write (.reward, or .onnx with --format onnx).")
@click.option("--form", type=click.Choice(["composite", "fitted", "features", "adversarial"]),
              default=None,
              help="composite [default for the fitted reward model]: the exact corrected "
              "reward (R_fit + the k buffered discriminators); features [default for "
              "--reward-model features]: base-feature encoder + linear weights, exact; "
              "fitted: one network fitted to the run's reward (smaller, faster); "
              "adversarial [the only form of --algo gail/airl/amp runs]: the latest "
              "discriminator's reward (AIRL: its unshaped g(s)).")
@click.option("--format", "fmt", type=click.Choice(["safetensors", "onnx"]),
              default="safetensors", show_default=True)
@click.option("--seed-index", type=int, default=0, show_default=True,
              help="Which seed of a multi-seed run.")
@click.option("--fit-steps", type=int, default=None,
              help="Adam steps of the fitted form [default: 4000].")
def export(run, output, form, fmt, seed_index, fit_steps):
    """Write the learned reward of a TRIRL run as a portable file.

    RUN is a `trirl learn` run directory, or a .reward file to convert with --format onnx.
    """
    _friendly(_export)(run, output, form, fmt, seed_index, fit_steps)


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n / 1e3:.1f} kB"


def _export(run, output, form, fmt, seed_index, fit_steps):
    from trirl import export as export_lib

    fit = export_lib.FitSettings()
    if fit_steps is not None:
        fit = export_lib.FitSettings(num_steps=fit_steps)
    header = export_lib.export(run, output, form=form, seed_index=seed_index, fit=fit, fmt=fmt)
    click.echo(f"wrote {output}: {header['form']} reward for {header['env']['name']} "
               f"({_size(output.stat().st_size)})")
    for source, err in header.get("fit_error", {}).get("held_out", {}).items():
        click.echo(f"  fit error on held-out {source}: rmse {err['rmse']:.4g} "
                   f"(target std {err['target_std']:.4g}, {err['rows']} rows)")


def _rows(header: dict, prefix: str = "") -> list[tuple[str, str]]:
    rows = []
    for key, value in header.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value and key not in ("ppo", "settings"):
            rows += _rows(value, name + ".")
        else:
            text = json.dumps(value) if not isinstance(value, str) else value
            rows.append((name, text if len(text) < 160 else text[:157] + "..."))
    return rows


@click.command("inspect")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the header as JSON.")
def inspect(file, as_json):
    """Print the header of a .reward file (validated, checksum included)."""
    _friendly(_inspect)(file, as_json)


def _inspect(file, as_json):
    from trirl.rewards import _file

    header, tensors = _file.read(file)
    if as_json:
        click.echo(json.dumps(header, indent=2, sort_keys=True))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{file} (checksum OK)")
    table.add_column("field")
    table.add_column("value", overflow="fold")
    for name, value in _rows(header):
        table.add_row(name, value)
    params = sum(int(t.size) for t in tensors.values())
    table.add_row("tensors", f"{len(tensors)} arrays, {params:,} float32 values")
    Console().print(table)


_TRAIN_OPTIONS = [
    click.option("--reward", "reward_path", type=click.Path(path_type=Path), default=None,
                 help="The .reward file to optimise (required unless --resume)."),
    click.option("--steps", type=int, default=None,
                 help="Environment steps per seed [default: the reward's training "
                      "budget, from its header]."),
    click.option("--seeds", type=int, default=3, show_default=True,
                 help="Independent fresh policies trained together (vmap)."),
    click.option("--seed", type=int, default=None,
                 help="[default: the reward's training seed + 10000 + its seed index, so no "
                      "policy shares an initialisation with training or with another "
                      "seed's re-optimisation]."),
    click.option("--run-dir", type=click.Path(path_type=Path), default=None,
                 help="Where to write the run [default: runs/<env>-<command>-<time>]."),
    click.option("--resume", type=click.Path(path_type=Path), default=None,
                 help="Continue the run in this directory from its last checkpoint "
                      "(with --steps N: extended to N steps)."),
    click.option("--demos", type=click.Path(path_type=Path), default=None,
                 help="Demo file whose metadata gives the env's expert/random returns for the "
                      "normalized score [default: the reward's, or the env's bundled demos]."),
    click.option("--set", "ppo_set", multiple=True, metavar="KEY=VALUE",
                 help="PPO setting over the one the reward was learned with, e.g. "
                      "--set learning_rate=3e-4."),
    click.option("--kl-penalty", type=float, default=None, metavar="ETA",
                 help="TR-loss policy steps instead of TRPL's: a KL(pi || pi_old) penalty "
                      "decaying linearly from ETA to 0 over the run; slow early steps help "
                      "a fresh policy past a local optimum of the frozen reward. 0: the "
                      "reward's recorded PPO steps [default: the learner's: its eta_init "
                      "for a tr_loss reward, else 0]."),
    click.option("--checkpoint-every", type=int, default=50, show_default=True),
    backend_option(NEW_RUN_BACKEND),
]


def _with_train_options(fn):
    for option in reversed(_TRAIN_OPTIONS):
        fn = option(fn)
    return fn


def _reoptimise(transfer, reward_path, env_name, steps, seeds, seed, run_dir, resume, demos,
                ppo_set, kl_penalty, checkpoint_every, backend):
    from trirl import retrain
    from trirl.errors import TrirlError
    from trirl.ppo import PPOConfig
    from trirl.settings import parse_overrides

    if resume:
        run = retrain.resume(resume, backend=backend, steps=steps)
    else:
        if reward_path is None:
            raise TrirlError("--reward FILE is required (a .reward file from `trirl export`)")
        run = retrain.train(reward_path, env_name=env_name, transfer=transfer, run_dir=run_dir,
                            steps=steps, seeds=seeds, seed=seed,
                            ppo_overrides=parse_overrides(ppo_set, PPOConfig, "PPO"),
                            demos=demos, checkpoint_every=checkpoint_every, backend=backend,
                            kl_penalty=kl_penalty)
    _print_evaluation(run)


def _print_evaluation(run: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    result = json.loads((Path(run) / "evaluation.json").read_text())
    table = Table(title=f"{run}: true-task evaluation ({result['episodes']} episodes per seed, "
                        "deterministic policy)")
    for col in ("seed", "return", "normalized score"):
        table.add_column(col)
    for i, r in enumerate(result["per_seed"]):
        score = "-" if r["normalized_score"] is None else f"{r['normalized_score']:.3f}"
        table.add_row(str(i), f"{r['return_mean']:.3f}", score)
    Console().print(table)
    if result["normalized_score_mean"] is not None:
        click.echo(f"normalized score {result['normalized_score_mean']:.3f} ± "
                   f"{result['normalized_score_std']:.3f} (mean ± std over seeds)")
    click.echo(f"run: {run}")


@click.command("retrain")
@click.option("--env", "env_name", default=None,
              help="Environment [default: the one the reward was learned on].")
@_with_train_options
def retrain(**options):
    """Re-optimise a frozen reward with PPO from a fresh initialisation."""
    _friendly(_reoptimise)(False, **options)


@click.command("transfer")
@click.option("--env", "env_name", default=None,
              help="Environment with changed dynamics, e.g. point_maze_flipped (required).")
@_with_train_options
def transfer(**options):
    """Optimise a frozen reward on an environment with changed dynamics."""
    _friendly(_reoptimise)(True, **options)


@click.command("report")
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), default=Path("report"),
              show_default=True, help="Directory for report.md, report.json, report.png.")
def report(runs, output):
    """Training / Retraining / Transfer table (paper Table 1) of trirl learn, retrain and
    transfer runs, as Markdown and a PNG bar chart."""
    _friendly(_report)(runs, output)


def _report(runs, output):
    from trirl import report as report_lib

    result = report_lib.write(list(runs), output)
    click.echo(result["markdown"], nl=False)
    click.echo(f"wrote {output / 'report.md'} and {output / 'report.png'}")
