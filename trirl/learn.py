"""``trirl learn`` runs: TRIRL (:mod:`trirl.algorithm`) or a baseline
(:mod:`trirl.baselines`) from demonstrations, as a run of kind ``"trirl"``.

A run is started from settings layered over the env's preset (:mod:`trirl.settings`,
:mod:`trirl.presets`), keeps its own copy of the demos, and lives the life of every run
(:mod:`trirl.runs`: record, checkpoints, resume, Ctrl-C). The learner's iteration is
jitted and ``vmap``-ed over seeds, and cached per (env, config), so runs and tests in
one process share the (slow) compilation.
"""

from __future__ import annotations

import dataclasses
import functools
import shutil
from pathlib import Path
from typing import Any, Optional

import jax

from trirl import demos as demos_lib
from trirl import envs, runs, sharding
from trirl.adversarial import ExpertData, LearnerState, Trace, expert_data
from trirl.algorithm import TRIRL, feature_spec
from trirl.baselines import Adversarial
from trirl.config import TRIRLConfig, config_record
from trirl.errors import TrirlError
from trirl.presets import learn_config, preset_steps
from trirl.references import bundled_demos, normalized_score
from trirl.rewards import features as features_lib
from trirl.settings import Settings, config_from_dict

KIND = "trirl"
DEMOS_FILE = "demos.npz"  # the run's own copy of its demonstrations
# metrics.jsonl name -> heading of the final summary table
SUMMARY_COLUMNS = {"episode_return": "return", "normalized_score": "normalized score",
                   "disc_expert_acc": "D acc expert", "disc_agent_acc": "D acc agent",
                   "eta": "eta", "eps_tr": "eps_tr", "policy_kl": "policy KL",
                   "reward_gap": "E_E[r] - E_pi[r]"}
Learner = TRIRL | Adversarial


def load_demos(path, env: envs.Env, config: TRIRLConfig) -> demos_lib.Demos:
    """Demos checked against ``env``; actions required when the discriminator reads them:
    inputs "sa"/"sas", or base features with action terms for the features model."""
    if config.features:
        needs = features_lib.reads(feature_spec(env, config), "action")
    else:
        needs = config.inputs != "ss"
    return demos_lib.load(path, env=env, require_actions=needs)


def default_env(demos: Optional[Path]) -> str:
    """The environment a run uses when none is named: the one the demos were recorded
    on, else Point Maze (whose demos are bundled)."""
    if demos is None:
        return "point_maze"
    return demos_lib.load(demos).metadata["env"]


def describe(config: TRIRLConfig) -> str:
    """``"trirl (max_eta)"``, ``"gail (log_d)"``, ``"airl"``, ``"amp"``: run labels."""
    if config.algo == "trirl":
        return f"trirl ({config.variant})"
    return f"gail ({config.gail_reward})" if config.algo == "gail" else config.algo


# ----------------------------------------------------------------------------- learners


def compiled(env: envs.Env, config: TRIRLConfig, num_iterations: int,
             placement: Optional[sharding.Placement] = None):
    """``(learner, init, iterate)`` with ``init(keys, expert)`` and ``iterate(state, expert)``
    jitted and vmapped over seeds (leading axis of ``keys``/``state``; ``expert`` shared).
    ``placement``: the devices ``iterate`` shards the env batch over (``trirl.sharding``;
    default one device); ``init`` builds the state on one device (``placement.place`` it).
    Cached per (env, config, num_iterations, placement)."""
    return _compiled(env, config, num_iterations, placement or sharding.Placement())


@functools.lru_cache(maxsize=8)
def _compiled(env: envs.Env, config: TRIRLConfig, num_iterations: int,
              placement: sharding.Placement):
    learner = (Adversarial if config.baseline else TRIRL)(env, config, num_iterations)
    init = jax.jit(jax.vmap(learner.init, in_axes=(0, None)))
    iterate = placement.jit(jax.vmap(learner.iteration, in_axes=(0, None)))
    return learner, init, iterate


# ----------------------------------------------------------------------------- runs


def train(env_name: Optional[str] = None, *, demos: Optional[Path] = None,
          run_dir: Optional[Path] = None, steps: Optional[int] = None, seeds: int = 1,
          seed: int = 0, settings: Optional[Settings] = None,
          env_overrides: Optional[dict] = None, checkpoint_every: int = 50,
          show_progress: bool = True, backend: Optional[str] = None) -> Path:
    """Start a learn run; returns its directory. Everything is validated before the
    directory is created.

    Args:
      env_name: environment [default: the demos' own, else "point_maze"].
      demos: demonstration file [default: the env's bundled demos].
      settings: per-section settings over the env's preset and the paper defaults
        (:mod:`trirl.settings`); ``settings[""]`` may set algo/variant/inputs/reward_model.
      backend: physics backend "mjx", "c" or "auto" [default: auto: MJX on a GPU, MuJoCo
        C on a CPU]; the concrete one is recorded for ``resume``.
    """
    env_name = env_name or default_env(demos)
    env = envs.make(env_name, backend=backend, **(env_overrides or {}))
    if demos is None:
        demos = bundled_demos(env_name)
        if demos is None:
            raise TrirlError(f"no bundled demonstrations for {env_name!r}; pass --demos FILE "
                             "(record one with `trirl demos RUN -o FILE`)")
    config = learn_config(env_name, settings,
                          observation_only=demos_lib.load(demos).actions is None)
    load_demos(demos, env, config)
    record = runs.new_record(
        KIND, env, config.policy_ppo, steps=int(steps or preset_steps(env_name, config)),
        seeds=seeds, seed=seed, checkpoint_every=checkpoint_every, env_overrides=env_overrides,
        trirl=config_record(config), demos=DEMOS_FILE, demos_source=str(demos))
    return runs.start(record, run_dir, show_progress=show_progress,
                      prepare=lambda d: shutil.copyfile(demos, d / DEMOS_FILE))


def resume(run_dir: Path, show_progress: bool = True, backend: Optional[str] = None,
           steps: Optional[int] = None) -> Path:
    return runs.resume(run_dir, kinds=(KIND,), backend=backend, show_progress=show_progress,
                       steps=steps)


@dataclasses.dataclass(frozen=True)
class Session:
    """An existing learn run, ready to train: its seed-stacked ``init()`` and
    ``iterate(state) -> (state, metrics, trace)`` (jitted, vmapped, cached per config)."""

    run: runs.Run
    config: TRIRLConfig
    learner: Learner
    expert: ExpertData
    keys: jax.Array
    reference: Optional[tuple[float, float]]  # (expert, random) mean return of the demos
    _init: Any
    _iterate: Any

    def init(self) -> LearnerState:
        return self._init(self.keys, self.expert)

    def iterate(self, state: LearnerState) -> tuple[LearnerState, dict, Trace]:
        state, metrics, trace = self._iterate(state, self.expert)
        if self.reference is not None:
            # NaN (logged as null) for a seed that finished no episode this iteration.
            metrics["normalized_score"] = normalized_score(metrics["episode_return"],
                                                           *self.reference)
        return state, metrics, trace


def _config(run: runs.Run) -> TRIRLConfig:
    return config_from_dict(run.config["trirl"], str(run.run_dir / runs.RECORD_FILE))


def _demos(run: runs.Run, config: TRIRLConfig) -> demos_lib.Demos:
    return load_demos(run.run_dir / run.config.get("demos", DEMOS_FILE), run.env, config)


def session_of(run: runs.Run, placement: Optional[sharding.Placement] = None) -> Session:
    """The :class:`Session` of an opened learn run (demos from its own copy); its
    ``iterate`` shards the env batch by ``placement`` (default: one device)."""
    if run.config.get("kind") != KIND:
        raise TrirlError(f"{run.run_dir} is a {run.config.get('kind')!r} run, not a learn "
                         "run; pass a run that `trirl learn` created")
    config = _config(run)
    demos = _demos(run, config)
    learner, init, iterate = compiled(run.env, config, int(run.config["num_iterations"]),
                                      placement)
    meta = demos.metadata
    reference = None
    if meta.get("expert_return_mean") is not None and meta.get("random_return_mean") is not None:
        reference = (float(meta["expert_return_mean"]), float(meta["random_return_mean"]))
    return Session(run=run, config=config, learner=learner,
                   expert=(placement or sharding.Placement()).replicate(
                       expert_data(demos, run.env.action_size)),
                   keys=runs.seed_keys(run.config), reference=reference, _init=init,
                   _iterate=iterate)


def open_session(run_dir: Path, placement: Optional[sharding.Placement] = None) -> Session:
    """The :class:`Session` of the learn run in ``run_dir``."""
    return session_of(runs.open_run(run_dir), placement)


def checkpoint_like(run: runs.Run) -> Any:
    """Shapes of a learn run's checkpointed (seed-stacked) state, for restoring all of it
    (``trirl.export``). Traces the cached ``init``: in a process that trained the run
    nothing is traced again."""
    config = _config(run)
    _, init, _ = compiled(run.env, config, int(run.config["num_iterations"]))
    return jax.eval_shape(init, runs.seed_keys(run.config),
                          expert_data(_demos(run, config), run.env.action_size))


def _training(run: runs.Run, placement: sharding.Placement) -> runs.Training:
    session = session_of(run, placement)
    columns = SUMMARY_COLUMNS
    if session.config.baseline:  # no eta / step size: they are TRIRL's correction
        columns = {k: v for k, v in columns.items() if k not in ("eta", "eps_tr")}
    return runs.Training(init=session.init, iterate=lambda s: session.iterate(s)[:2],
                         steps_per_iteration=session.config.ppo.batch_size,
                         label=f"{describe(session.config)} {run.config['env']}",
                         summary=columns)


runs.register(KIND, _training)
