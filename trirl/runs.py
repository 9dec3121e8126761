"""The life of a run directory, one way for every kind of run.

A run directory holds ``config.json`` (its *record*: everything needed to rebuild the
run), ``metrics.jsonl`` and ``checkpoints/``, plus files of its kind (a learner's copy
of its demos, a re-optimisation's copy of its reward). Every kind -- ``expert``,
``trirl`` (``trirl learn``, baselines included), ``retrain`` and ``transfer`` -- goes
through the same steps:

1. :func:`new_record`: the settings checked and the budget turned into iterations,
   before anything is written;
2. :func:`start`: the directory claimed, the kind's files copied in, the record
   written last (it is what marks a directory as a run), then :func:`train`;
3. :func:`train`: the run rebuilt *from its record* -- a new run exactly as a resumed
   one, so a resumed run continues bit-for-bit -- and handed to the host loop of
   :mod:`trirl.runner` (progress, checkpoints, Ctrl-C, divergence);
4. :func:`resume`: the same, from the latest checkpoint.

The kinds register how they build their training (:func:`register`), so this module
imports none of them and none of them imports another. One contract holds for all: a
run's state pytree *begins* with its seed-stacked ``PPOState``, so :func:`load_policy`
reads any run's policy without knowing its kind.

Physics backend. The record holds the concrete backend a run trained on (``"mjx"`` or
``"c"``; runs from before the C backend have none and are MJX). Its checkpoints hold
that engine's physics state, so ``resume`` uses it (and refuses another); evaluation
and demos may step another backend, since they restore only the policy.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
from pathlib import Path
from typing import Any, Callable, Optional

import jax
import numpy as np

import trirl
from trirl import envs, sharding
from trirl.checkpoint import Checkpointer
from trirl.errors import TrirlError
from trirl.ppo import PPO, PPOConfig
from trirl.runner import console, print_summary, train_loop, write_json_atomic
from trirl.settings import ppo_config_from_dict

RECORD_FILE = "config.json"
# The command that starts (and resumes) each kind, for messages.
COMMANDS = {"expert": "trirl expert", "trirl": "trirl learn", "retrain": "trirl retrain",
            "transfer": "trirl transfer"}


# ----------------------------------------------------------------------------- records


def read_record(run_dir: Path) -> dict:
    """The run's ``config.json``; one-line errors for a directory that holds no run."""
    path = Path(run_dir) / RECORD_FILE
    if not path.exists():
        raise TrirlError(f"{run_dir}: not a trirl run directory (no config.json); pass the "
                         "directory that `trirl expert`/`trirl learn` created")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise TrirlError(f"{path}: invalid JSON ({exc.msg} at line {exc.lineno}); restore "
                         "the file or start a new run") from None


def recorded_backend(record: dict) -> str:
    """The backend a run trained on (runs from before the C backend: MJX)."""
    return record.get("backend", "mjx")


def check_resume_backend(run_dir: Path, record: dict, backend: Optional[str]) -> None:
    """One-line error when ``--backend`` asks a resumed run to change physics engine."""
    if backend is None:
        return
    wanted, recorded = envs.resolve_backend(backend), recorded_backend(record)
    if wanted != recorded:
        raise TrirlError(f"{run_dir} was trained on the {recorded!r} backend and its "
                         f"checkpoints hold that engine's physics state; resume it with "
                         f"--backend {recorded} (or without --backend)")


def new_record(kind: str, env: envs.Env, ppo: PPOConfig, *, steps: int, seeds: int, seed: int,
               checkpoint_every: int, env_overrides: Optional[dict] = None, **extra) -> dict:
    """The record of a new run of ``kind``: the keys every kind has, then ``extra``.
    Checks the budget flags (one-line errors) and that the env batch splits over the
    local devices; writes nothing."""
    if seeds < 1:
        raise TrirlError(f"--seeds must be >= 1 (got {seeds})")
    if checkpoint_every < 1:
        raise TrirlError(f"--checkpoint-every must be >= 1 (got {checkpoint_every})")
    if steps < 1:
        raise TrirlError(f"--steps must be >= 1 (got {steps})")
    num_iterations = _iterations(steps, ppo.batch_size)
    devices = sharding.for_training(env.backend_name, ppo.num_envs).devices  # checks num_envs
    return {"kind": kind, "env": env.name, "env_overrides": env_overrides or {},
            "backend": env.backend_name, "ppo": dataclasses.asdict(ppo), "seeds": seeds,
            "seed": seed, "devices": devices, "total_steps": num_iterations * ppo.batch_size,
            "num_iterations": num_iterations, "checkpoint_every": checkpoint_every,
            "trirl_version": trirl.__version__, **extra}


def _iterations(steps: int, batch_size: int) -> int:
    """Iterations that cover ``steps`` env steps per seed (at least one)."""
    return max(1, -(-int(steps) // batch_size))


def seed_keys(record: dict) -> jax.Array:
    """One PRNG key per seed of a run, ``(seeds, 2)``."""
    return jax.random.split(jax.random.PRNGKey(record["seed"]), int(record["seeds"]))


# ----------------------------------------------------------------------------- runs


@dataclasses.dataclass(frozen=True)
class Run:
    """A run rebuilt from its directory: its record, env and (policy) PPO."""

    run_dir: Path
    config: dict  # the record
    env: envs.Env
    ppo: PPO

    @property
    def num_seeds(self) -> int:
        return int(self.config["seeds"])


def open_run(run_dir: str | Path, backend: Optional[str] = None) -> Run:
    """Rebuild a run; its env steps ``backend`` (default: the one it trained on)."""
    run_dir = Path(run_dir)
    record = read_record(run_dir)
    env = envs.make(record["env"], backend=backend or recorded_backend(record),
                    **record.get("env_overrides", {}))
    ppo = PPO(env, ppo_config_from_dict(record["ppo"], str(run_dir / RECORD_FILE)))
    return Run(run_dir=run_dir, config=record, env=env, ppo=ppo)


def default_run_dir(kind: str, env_name: str) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{env_name}-{kind}-{stamp}"


def claim_run_dir(run_dir: Optional[Path], kind: str, env_name: str) -> Path:
    """Create the directory of a new run (default ``runs/<env>-<kind>-<time>``); refuse
    one that already holds a run."""
    run_dir = Path(run_dir) if run_dir else default_run_dir(kind, env_name)
    if (run_dir / RECORD_FILE).exists():
        raise TrirlError(f"{run_dir} already holds a run; use --resume {run_dir} or another "
                         "--run-dir")
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


# ----------------------------------------------------------------------------- kinds


@dataclasses.dataclass(frozen=True)
class Training:
    """What the host loop needs of one run: ``init() -> state`` (seed-stacked, its
    ``PPOState`` first) and ``iterate(state) -> (state, metrics)``."""

    init: Callable[[], Any]
    iterate: Callable[[Any], tuple[Any, dict]]
    steps_per_iteration: int
    label: str
    summary: dict[str, str]  # metrics.jsonl name -> heading of the final table
    finish: Optional[Callable[[], None]] = None  # after the last iteration


# kind -> builder(run, placement) -> Training; filled by the kinds' modules.
_KINDS: dict[str, Callable[[Run, sharding.Placement], Training]] = {}


def register(kind: str, build: Callable[[Run, sharding.Placement], Training]) -> None:
    _KINDS[kind] = build


def _check_kind(run_dir: Path, record: dict, kinds: tuple[str, ...]) -> str:
    kind = record.get("kind")
    if kind not in kinds:
        wanted = "/".join(kinds)
        how = f"`{COMMANDS[kind]} --resume {run_dir}`" if kind in COMMANDS else \
            "the command that started it"
        raise TrirlError(f"{run_dir} is a {kind!r} run, not a {wanted} run; resume it "
                         f"with {how}")
    return kind


# ----------------------------------------------------------------------------- lifecycle


def start(record: dict, run_dir: Optional[Path], *, prepare: Callable[[Path], None] = None,
          show_progress: bool = True) -> Path:
    """Claim the run directory, let ``prepare(run_dir)`` copy the kind's files in, write
    the record (last: it marks a run) and train; returns the directory."""
    run_dir = claim_run_dir(run_dir, record["kind"], record["env"])
    if prepare is not None:
        prepare(run_dir)
    write_json_atomic(run_dir / RECORD_FILE, record)
    train(run_dir, resume=False, show_progress=show_progress, kinds=(record["kind"],))
    return run_dir


def resume(run_dir: Path, *, kinds: tuple[str, ...], backend: Optional[str] = None,
           show_progress: bool = True, steps: Optional[int] = None) -> Path:
    """Continue the run in ``run_dir`` from its latest checkpoint. A run stopped before
    its first checkpoint starts again from iteration 0 with its own record. ``steps``
    (``--resume RUN --steps N``): a larger budget, see :func:`extend`."""
    run_dir = Path(run_dir)
    record = read_record(run_dir)
    _check_kind(run_dir, record, kinds)
    check_resume_backend(run_dir, record, backend)
    if steps is not None:
        extend(run_dir, record, steps)
    train(run_dir, resume=True, show_progress=show_progress, kinds=kinds)
    return run_dir


def length_schedule(record: dict) -> Optional[str]:
    """What of a run's settings is scheduled over its whole length, or ``None``."""
    learner = record.get("trirl", {})
    if learner.get("algo", "trirl") == "trirl" and learner.get("variant") == "tr_loss" \
            and learner.get("eta_schedule") == "linear":
        return "its TR-loss eta decays linearly over the run's length"
    if record.get("kl_penalty"):
        return "its KL penalty decays linearly over the run's length"
    return None


def extend(run_dir: Path, record: dict, steps: int) -> None:
    """Raise a run's budget to ``steps`` env steps per seed (its record rewritten
    atomically). Nothing else in the run depends on its length, so the extended run is
    bit-for-bit the run started with the larger budget -- except where a setting is
    scheduled over the length (:func:`length_schedule`): those are refused. A budget
    below the recorded one is refused too (the run's checkpoints may be past it)."""
    batch = ppo_config_from_dict(record["ppo"], str(run_dir / RECORD_FILE)).batch_size
    iterations, recorded = _iterations(steps, batch), int(record["num_iterations"])
    if iterations == recorded:
        return
    if iterations < recorded:
        raise TrirlError(f"{run_dir}: --steps {steps} is below the run's budget of "
                         f"{record['total_steps']} steps; a resumed run can only be extended")
    why = length_schedule(record)
    if why is not None:
        raise TrirlError(f"{run_dir}: cannot extend the run to --steps {steps}: {why}; "
                         f"start a new run with --steps {steps}")
    write_json_atomic(run_dir / RECORD_FILE,
                      {**record, "num_iterations": iterations, "total_steps": iterations * batch,
                       "extended_from_steps": record.get("extended_from_steps", [])
                       + [record["total_steps"]]})
    console.print(f"{run_dir}: budget extended from {record['total_steps']:,} to "
                  f"{iterations * batch:,} env steps per seed")


def latest_step(run_dir: Path) -> Optional[int]:
    ckpt = Checkpointer(Path(run_dir) / "checkpoints")
    try:
        return ckpt.latest_step()
    finally:
        ckpt.close()


def train(run_dir: Path, *, resume: bool, show_progress: bool, kinds: tuple[str, ...]) -> None:
    """Train the run in ``run_dir`` (its record written) to its last iteration."""
    run_dir = Path(run_dir)
    record = read_record(run_dir)
    kind = _check_kind(run_dir, record, kinds)
    if resume and latest_step(run_dir) is None:
        console.print(f"{run_dir}: no checkpoint yet; starting it from iteration 0 with its "
                      "recorded settings")
        resume = False
    run = open_run(run_dir)
    # Env batch sharded over the local devices (trirl.sharding; no-op on one device). A
    # resumed state is restored on one device and moved onto the mesh by the first call.
    placement = sharding.for_training(run.env.backend_name, run.ppo.config.num_envs,
                                      say=console.print)
    training = _KINDS[kind](run, placement)
    train_loop(run_dir, lambda: placement.place(training.init()), training.iterate,
               num_iterations=record["num_iterations"],
               steps_per_iteration=training.steps_per_iteration,
               checkpoint_every=record.get("checkpoint_every", 50), resume=resume,
               label=training.label, show_progress=show_progress)
    if training.finish is not None:
        training.finish()
    if show_progress:
        print_summary(run_dir, training.summary, f"{training.label}: last logged values")


# ----------------------------------------------------------------------------- policies


def init_policies(run: Run):
    """The seed-stacked initial PPO states of a run (jitted ``vmap`` of ``PPO.init``)."""
    return jax.jit(jax.vmap(run.ppo.init))(seed_keys(run.config))


def load_policy(run: Run, seed_index: int = 0) -> tuple:
    """``(actor_params, obs_stats)`` of seed ``seed_index`` from the latest checkpoint,
    for a run of any kind (its state begins with its ``PPOState``)."""
    if not 0 <= seed_index < run.num_seeds:
        raise TrirlError(f"{run.run_dir}: --seed-index {seed_index} out of range; the run has "
                         f"{run.num_seeds} seed(s)")
    if run.env.backend_name != recorded_backend(run.config):
        # The checkpoint holds the physics state of the backend the run trained on; read
        # it in that layout (shapes only, nothing is compiled), keep only the policy.
        run = open_run(run.run_dir)
    like = jax.eval_shape(jax.vmap(run.ppo.init), seed_keys(run.config))
    like = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), like)
    ckpt = Checkpointer(run.run_dir / "checkpoints")
    try:
        if ckpt.latest_step() is None:
            raise TrirlError(f"{run.run_dir}: no checkpoint found in "
                             f"{run.run_dir / 'checkpoints'}; train first (trirl expert / "
                             "trirl learn)")
        state = ckpt.restore_leading(like)
    finally:
        ckpt.close()
    pick = lambda x: x[seed_index]  # noqa: E731
    return jax.tree.map(pick, state.actor), jax.tree.map(pick, state.obs_stats)
