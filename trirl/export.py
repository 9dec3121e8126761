"""Writing a TRIRL run's learned reward as a portable ``.reward`` file.

Forms (``docs/reward-format.md``):

* ``composite`` -- the exact corrected reward of the last iteration (Alg. 2 lines
  19-23): R_fit plus the buffered discriminators, oldest first, each with its step
  ``eps / (1 + eta)``. The reader evaluates the same recursion, so its values equal the
  learner's ``corrected_reward / beta`` to float32 rounding.
* ``fitted`` -- one network regressed on the composite reward over expert transitions,
  rollouts of the final policy and rollouts of a freshly initialised policy (the states
  a re-optimisation starts from), with the held-out fit error of each in the header.
* ``features`` -- a run of the feature-based reward model (``trirl.feature_reward``):
  the env's base-feature spec, the encoder (the discriminator's hidden layers) and the
  corrected linear weights as its output layer. Exact, like ``composite``.
* ``adversarial`` -- a baseline run (``--algo gail|airl|amp``, ``trirl.baselines``):
  its latest discriminator network and the output transform of its reward (GAIL's
  log D / -log(1 - D) / logit, AMP's clipped quadratic); for AIRL the unshaped g(s)
  alone, on state-only inputs (kind ``s``). Exact.

The reward is exported in the policy's units, ``r / beta`` for TRIRL (see
``trirl.learn``); a baseline's reward is the one its PPO optimised (AIRL: g).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np

import trirl
from trirl import learn, normalizer
from trirl import reward_buffer as rb
from trirl.errors import TrirlError
from trirl.rewards import _file

FORMS = ("composite", "fitted", "features", "adversarial")
NORMALIZE_CLIP = 10.0  # trirl.normalizer.normalize's default, used by the learner


@dataclasses.dataclass(frozen=True)
class FitSettings:
    """How the ``fitted`` form is trained (not in the paper: an export-time choice).

    Attributes:
      num_steps: Adam steps on the pooled samples.
      learning_rate: Adam step size.
      minibatch_size: rows per step.
      rollouts: rollouts (``num_envs x rollout_length`` rows each) of the final policy
        and, as many, of a freshly initialised policy.
      holdout: fraction of every source kept out of training to report the fit error.
    """

    num_steps: int = 4000
    learning_rate: float = 3e-4
    minibatch_size: int = 1024
    rollouts: int = 8
    holdout: float = 0.2


def _layers(params: Any, prefix: str, stacked_order: Optional[np.ndarray] = None) -> dict:
    """``{prefix}/layer{i}/kernel|bias`` float32 arrays of a ``ScalarMLP``'s params;
    ``stacked_order`` picks (and orders) members of a stacked pytree."""
    dense = params["params"]["MLP_0"]
    out = {}
    for i, name in enumerate(sorted(dense, key=lambda n: int(n.split("_")[1]))):
        for part in ("kernel", "bias"):
            value = np.asarray(dense[name][part], np.float32)
            if stacked_order is not None:
                value = value[stacked_order]
            out[f"{prefix}/layer{i}/{part}"] = value
    return out


@dataclasses.dataclass(frozen=True)
class RunReward:
    """The final learned reward of one seed of a TRIRL run, as the learner holds it."""

    session: Any  # trirl.learn.Session
    buffer: Any  # rb.RewardBuffer, or feature_reward.LinearReward (features model)
    disc_params: Any  # the newest discriminator (the features model's encoder)
    disc_stats: normalizer.RunningStats
    ppo_state: Any  # that seed's PPOState (for the fitted form's rollouts)
    iterations: int
    seed_index: int

    def corrected(self, x: jax.Array) -> jax.Array:
        """The learner's corrected reward / beta on discriminator inputs x (N, D)."""
        learner = self.session.learner
        return learner.corrected_reward(self.buffer, self.disc_params, x) / learner.beta


def load_run_reward(run_dir: Path, seed_index: int = 0) -> RunReward:
    """The reward buffer of ``seed_index`` from a TRIRL run's latest checkpoint."""
    from trirl.runner import load_state

    run_dir = Path(run_dir)
    session = learn.open_session(run_dir)
    if not 0 <= seed_index < session.run.num_seeds:
        raise TrirlError(f"{run_dir}: --seed-index {seed_index} out of range; the run has "
                         f"{session.run.num_seeds} seed(s)")
    like = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), learn.checkpoint_like(session.run))
    state, _ = load_state(run_dir, like)
    pick = lambda tree: jax.tree.map(lambda a: a[seed_index], tree)  # noqa: E731
    ppo_state = pick(state.ppo)
    return RunReward(session=session, buffer=pick(state.buffer),
                     disc_params=pick(state.disc_params), disc_stats=pick(state.disc_stats),
                     ppo_state=ppo_state, iterations=int(ppo_state.iteration),
                     seed_index=seed_index)


def _base_header(rr: RunReward, form: str) -> dict:
    session, cfg = rr.session, rr.session.config
    env, run = session.run.env, session.run
    demos_path = run.run_dir / run.config.get("demos", learn.DEMOS_FILE)
    meta = session.reference
    return {
        "trirl_version": trirl.__version__,
        "form": form,
        "env": {"name": env.name, "observation_size": env.observation_size,
                "action_size": env.action_size, "observation_names": list(env.obs_names),
                "action_low": [float(v) for v in env.action_low],
                "action_high": [float(v) for v in env.action_high],
                "overrides": run.config.get("env_overrides", {})},
        "inputs": {"kind": "features" if cfg.features else cfg.inputs,
                   "absorbing_indicator": cfg.disc.use_absorbing,
                   "normalize": cfg.normalize_disc_inputs, "clip": NORMALIZE_CLIP},
        **({"features": session.learner.feature_spec} if cfg.features else {}),
        "beta": float(cfg.beta),
        "units": "r / beta: the learner's reward divided by beta, the units its policy was "
                 "trained in (PPO with entropy coefficient 1 / beta)",
        "gamma": float(cfg.ppo.gamma),
        "provenance": {
            "algorithm": cfg.algo,
            **({"variant": cfg.variant, "k": None if cfg.features else cfg.capacity,
                "eps": cfg.eps,
                # TR-loss policy steps (no projection: "ppo" below has no trust region);
                # `trirl retrain` takes the same steps by default.
                **({"eta_init": float(cfg.eta_init), "eta_schedule": cfg.eta_schedule}
                   if cfg.variant == "tr_loss" else {})} if not cfg.baseline else
               {"variant": cfg.gail_reward if cfg.algo == "gail" else None,
                "k": None, "eps": None}),
            "reward_model": cfg.reward_model, "iterations": rr.iterations,
            "env_steps": rr.iterations * cfg.ppo.batch_size, "seed": run.config["seed"],
            "seed_index": rr.seed_index, "run": run.run_dir.name,
            "demos_sha256": _file.file_sha256(demos_path),
            "demos_source": run.config.get("demos_source"),
            "expert_return_mean": None if meta is None else meta[0],
            "random_return_mean": None if meta is None else meta[1],
            "ppo": dataclasses.asdict(cfg.policy_ppo),
        },
    }


def _normalizer_tensors(rr: RunReward) -> dict:
    if not rr.session.config.normalize_disc_inputs:
        return {}
    stats = rr.disc_stats
    # The divisor exactly as trirl.normalizer.normalize computes it, in float32.
    std = jnp.maximum(jnp.sqrt(jnp.maximum(stats.var, 1e-8)), 1e-4)
    return {"normalizer/mean": np.asarray(stats.mean, np.float32),
            "normalizer/std": np.asarray(std, np.float32)}


def _network(layers: dict, prefix: str, activation: str) -> dict:
    widths = [layers[f"{prefix}/layer0/kernel"].shape[-2]]
    i = 0
    while f"{prefix}/layer{i}/kernel" in layers:
        widths.append(layers[f"{prefix}/layer{i}/kernel"].shape[-1])
        i += 1
    return {"layers": [int(w) for w in widths], "activation": activation}


def composite(rr: RunReward) -> tuple[dict, dict]:
    """``(header, tensors)`` of the composite form."""
    cfg = rr.session.config
    buffer = rr.buffer
    slots, valid = rb.slot_order(buffer)
    order = np.asarray(slots)[np.asarray(valid)]  # chronological: oldest first
    tensors = _normalizer_tensors(rr)
    header = _base_header(rr, "composite")
    header["networks"] = {}
    use_fit = bool(buffer.cfg.use_fit and buffer.fit_active)
    if use_fit:
        fit = _layers(buffer.fit_params, "fit")
        tensors.update(fit)
        header["networks"]["fit"] = _network(fit, "fit", buffer.cfg.fit.activation)
    steps = np.asarray(rb._step(buffer.cfg, cfg.eps, buffer.etas), np.float32)[order]
    tensors["members/step"] = steps
    if len(order):
        members = _layers(buffer.disc_params, "members", order)
        tensors.update(members)
        header["networks"]["members"] = _network(members, "members", buffer.cfg.disc.activation)
    header["composite"] = {"base": "fit" if use_fit else "zero", "members": int(len(order)),
                           "fit_scale": float(cfg.beta),  # R_fit predicts r / beta
                           "eps": float(cfg.eps),
                           "eta_mode": "stored" if cfg.retrospective else "max_eta"}
    header["absorbing_reward"] = _absorbing_reward(rr)
    return header, tensors


def features(rr: RunReward) -> tuple[dict, dict]:
    """``(header, tensors)`` of the features form: the base-feature spec, the encoder
    and the corrected linear weights (``/ beta``) as the network's output layer."""
    beta = rr.session.config.beta
    layers = _layers(rr.disc_params, "reward")
    last = len(layers) // 2 - 1
    layers[f"reward/layer{last}/kernel"] = np.asarray(rr.buffer.theta, np.float32)[:, None] / beta
    layers[f"reward/layer{last}/bias"] = np.asarray(rr.buffer.bias, np.float32)[None] / beta
    tensors = {**_normalizer_tensors(rr), **layers}
    header = _base_header(rr, "features")
    header["networks"] = {"reward": _network(layers, "reward", rr.session.config.disc.activation)}
    header["absorbing_reward"] = _absorbing_reward(rr)
    return header, tensors


def adversarial(rr: RunReward) -> tuple[dict, dict]:
    """``(header, tensors)`` of a baseline run: one network ``reward`` and the output
    transform of its reward. AIRL exports g alone, on the state slot ``[s, i]``."""
    from trirl.baselines import output_name

    learner, cfg = rr.session.learner, rr.session.config
    header = _base_header(rr, "adversarial")
    if cfg.algo == "airl":
        layers = _layers(rr.disc_params["g"], "reward")
        header["inputs"]["kind"] = "s"
        output = "identity"
    else:
        layers = _layers(rr.disc_params, "reward")
        output = output_name(cfg)
    header["units"] = ("the reward the policy was trained on (PPO with entropy coefficient "
                       "1 / beta)" if cfg.algo != "airl" else
                       "AIRL's unshaped reward g(s); its policy was trained on g(s) + gamma "
                       "h(s') - h(s) - log pi(a|s) (PPO with entropy coefficient 1 / beta)")
    header["networks"] = {"reward": _network(layers, "reward", cfg.disc.activation)}
    header["adversarial"] = {"algo": cfg.algo, "output": output}
    x_abs = learner.absorbing_x()[None]
    header["absorbing_reward"] = float(learner.exported_reward(rr.disc_params, x_abs)[0]) \
        if cfg.disc.use_absorbing else 0.0
    return header, {**_normalizer_tensors(rr), **layers}


def _absorbing_reward(rr: RunReward) -> float:
    if not rr.session.config.disc.use_absorbing:
        return 0.0
    return float(rr.corrected(rr.session.learner.absorbing_x()[None])[0])


def export(run_dir: Path, output: Path, *, form: Optional[str] = None, seed_index: int = 0,
           fit: FitSettings = FitSettings(), fmt: str = "safetensors") -> dict:
    """Write the reward of a TRIRL run (or convert a ``.reward`` file to ONNX) to
    ``output``; returns the header written. ``form`` defaults to the run's exact form:
    ``features`` for the features reward model, ``composite`` otherwise."""
    if form is not None and form not in FORMS:
        raise TrirlError(f"--form {form!r} is not one of {', '.join(FORMS)}")
    if fmt not in ("safetensors", "onnx"):
        raise TrirlError(f"--format {fmt!r} is not one of safetensors, onnx")
    if Path(run_dir).is_file():  # an existing .reward file: convert it
        from trirl import rewards

        if fmt != "onnx":
            raise TrirlError(f"{run_dir} is already a reward file; pass a run directory, or "
                             "--format onnx to convert the file")
        reward = rewards.load(run_dir)
        from trirl.rewards import onnx_export

        onnx_export.save(reward, output)
        return reward.header
    rr = load_run_reward(run_dir, seed_index)
    cfg = rr.session.config
    if cfg.baseline:
        if form not in (None, "adversarial"):
            raise TrirlError(f"{run_dir}: --form {form} is for TRIRL runs; this {cfg.algo} run "
                             "exports its discriminator's reward exactly: drop --form or "
                             "use --form adversarial")
        form = "adversarial"
    exact = "features" if cfg.features else "composite"
    form = exact if form is None else form
    if form == "adversarial" and not cfg.baseline:
        raise TrirlError(f"{run_dir}: --form adversarial is for baseline runs (--algo gail, "
                         f"airl, amp); use --form {exact} or fitted")
    if form in ("composite", "features") and form != exact:
        model = "features" if form == "features" else "fitted"
        raise TrirlError(f"{run_dir}: --form {form} needs a run of the {model} reward model and "
                         f"this run's exact form is {exact}; use --form {exact} or fitted")
    header, tensors = {"composite": composite, "features": features,
                       "adversarial": adversarial}[form](rr) \
        if form != "fitted" else fitted(rr, fit)
    if fmt == "onnx":
        from trirl.rewards import onnx_export
        from trirl.rewards.reward import Reward

        header, tensors = _file.finalize(Path(output), header, tensors)
        onnx_export.save(Reward(header, tensors), output)
        return header
    _file.write(output, header, tensors)
    return _file.read(output)[0]


def _fit_samples(rr: RunReward, fit: FitSettings, key: jax.Array) -> dict[str, np.ndarray]:
    """Discriminator inputs by source: expert transitions, the final policy's rollouts,
    a fresh policy's rollouts, and copies of the absorbing input."""
    learner, session = rr.session.learner, rr.session
    expert = session.expert
    x_of = lambda obs, act, nxt, ab: learner.disc_x(rr.disc_stats, obs, act, nxt, ab)  # noqa
    sources = {"expert": x_of(expert.obs, expert.actions, expert.next_obs, expert.absorbing)}
    collect = jax.jit(learner.ppo.collect)
    for name, state in (("agent", rr.ppo_state), ("fresh_policy", learner.ppo.init(key))):
        rows = []
        for _ in range(fit.rollouts):
            state, rollout, _ = collect(state)
            rows.append(x_of(rollout.obs, rollout.action, rollout.next_obs, rollout.absorbing)
                        .reshape(-1, learner.input_dim))
        sources[name] = jnp.concatenate(rows)
    if learner.disc_cfg.use_absorbing:
        sources["absorbing"] = jnp.broadcast_to(learner.absorbing_x(), (256, learner.input_dim))
    return {name: np.asarray(x) for name, x in sources.items()}


def fitted(rr: RunReward, fit: FitSettings) -> tuple[dict, dict]:
    """``(header, tensors)`` of the fitted form: one ``ScalarMLP`` (R_fit's architecture)
    regressed on the composite reward, with held-out errors per sample source."""
    if fit.num_steps < 1 or fit.rollouts < 1 or not 0.0 < fit.holdout < 1.0:
        raise TrirlError(f"fitted export settings out of range: {fit}")
    run_cfg = rr.session.config
    key_init, key_fresh, key_fit = jax.random.split(jax.random.PRNGKey(rr.seed_index), 3)
    sources = _fit_samples(rr, fit, key_fresh)
    corrected = jax.jit(rr.corrected)
    rng = np.random.default_rng(0)
    train_x, held = [], {}
    for name, x in sources.items():
        idx = rng.permutation(len(x))
        cut = max(1, int(round(len(x) * fit.holdout)))
        held[name] = x[idx[:cut]]
        train_x.append(x[idx[cut:]])
    x_train = jnp.asarray(np.concatenate(train_x))
    y_train = corrected(x_train)
    cfg = dataclasses.replace(run_cfg.fit, num_steps=fit.num_steps,
                              learning_rate=fit.learning_rate, minibatch_size=fit.minibatch_size)
    params = rb.fit_init(cfg, key_init, x_train.shape[-1])
    params, _, metrics = rb.fit_reward(cfg, params, rb.fit_init_opt_state(cfg, params),
                                       x_train, y_train, key_fit)
    predict = jax.jit(lambda x: rb.fit_apply(cfg, params, x))
    errors = {}
    for name, x in held.items():
        target, guess = np.asarray(corrected(x)), np.asarray(predict(x))
        errors[name] = {"rows": int(len(x)), "rmse": float(np.sqrt(np.mean((guess - target) ** 2))),
                        "max_abs": float(np.max(np.abs(guess - target))),
                        "target_std": float(np.std(target))}
    tensors = {**_normalizer_tensors(rr), **_layers(params, "fit")}
    header = _base_header(rr, "fitted")
    header["networks"] = {"fit": _network(tensors, "fit", cfg.activation)}
    header["fit_error"] = {"held_out": errors, "train_mse": float(metrics["fit_mse"]),
                           "settings": dataclasses.asdict(fit),
                           "target": "composite reward of the same run and seed"}
    header["absorbing_reward"] = float(predict(rr.session.learner.absorbing_x()[None])[0]) \
        if run_cfg.disc.use_absorbing else 0.0
    return header, tensors
