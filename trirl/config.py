"""TRIRL's settings: one frozen dataclass with the paper's defaults (Table 7, App. C.5).

Validation only: a config is never changed after it is made, and values that follow
from others (beta, the discriminator the run trains, the buffer, the policy's PPO
config) are read-only properties. The settings layers (presets, ``--config``,
``--set``, flags) are merged in :mod:`trirl.settings`.
"""

from __future__ import annotations

import dataclasses

from trirl import discriminator as disc
from trirl import reward_buffer as rb
from trirl.choices import ALGOS, ETA_SCHEDULES, GAIL_REWARDS, INPUTS, REWARD_MODELS, VARIANTS
from trirl.errors import TrirlError
from trirl.ppo import PPOConfig, TrustRegionConfig

__all__ = ["ALGOS", "ETA_SCHEDULES", "GAIL_REWARDS", "INPUTS", "REWARD_MODELS", "VARIANTS",
           "TRIRLConfig", "config_record"]


def _default_ppo() -> PPOConfig:
    # Paper App. C.5: rollout horizon 10, minibatch 512, policy LR 4e-5..1e-4, entropy
    # coefficient 8e-5..5e-3 (= 1/beta); TRPL bounds in Table 7's ranges.
    return PPOConfig(num_envs=256, rollout_length=10, num_epochs=20, minibatch_size=512,
                     learning_rate=1e-4, entropy_coef=1e-3, trust_region=TrustRegionConfig())


def _default_disc() -> disc.DiscriminatorConfig:
    # Paper: disc LR 8e-5..3e-4, 20-30 gradient steps per iteration, grad penalty 0.005.
    return disc.DiscriminatorConfig(learning_rate=2e-4, num_steps=25)


@dataclasses.dataclass(frozen=True)
class TRIRLConfig:
    """TRIRL settings (paper Table 7 and App. C.5 ranges in brackets).

    Attributes:
      algo: one of :data:`ALGOS`: "trirl" or a baseline on the same machinery ("gail",
        "airl", "amp"; module docstring and ``trirl.baselines``). Settings that only
        TRIRL has (variant, reward_model, eps, capacity, eta_*, fit, the TRPL bounds)
        do not apply to the baselines.
      gail_reward: GAIL's policy reward from the logit z, one of :data:`GAIL_REWARDS`:
        "log_d" = log sigmoid(z) (paper App. C.1, default), "neg_log_one_minus_d" =
        -log(1 - sigmoid(z)) = softplus(z), "logit" = z.
      variant: one of :data:`VARIANTS` (see the module docstring).
      inputs: discriminator inputs: "sa" = D(s, a) (needs demo actions), "ss" = D(s, s')
        for observation-only demos (paper Sec. 4.4), "sas" = D(s, a, s'). The
        discriminator the run trains (:attr:`discriminator`) takes its inputs from this
        field, whatever ``disc.inputs`` says.
      reward_model: "fitted" -- discriminators on the transition (``inputs``), the
        buffer of k of them and R_fit (paper Sec. 4.2); "features" -- discriminators on
        the env's named base features with a reward linear in their encoding, corrected
        exactly in the linear weights (``trirl.feature_reward``; paper Sec. 5.1). The
        features model has no buffer, so ``capacity`` and ``fit`` do not apply.
      feature_names: features model only: which of the env's base features the reward
        reads, by name (``trirl envs`` lists them); empty, the default: all of them.
        E.g. a state-only reward that does not judge the action's size.
      eps: reward step size epsilon [0.45, 0.75].
      capacity: discriminator buffer capacity k [80, 120].
      eta_init: penalty weight of the ``tr_loss`` variant [60, 100].
      eta_schedule: ``tr_loss`` only: "linear" (eta_init -> 0 over the run) or "constant".
      reward_eta_floor: not in the paper (0, the default, is the paper): the reward
        recursion uses ``max(eta, floor)`` whichever way the variant obtains eta (TRPL's
        multipliers, the TR-loss schedule, the retrospective per-state etas), i.e. steps
        of at most ``eps / (1 + floor)``, while the policy keeps its own step. A long
        reward memory: with the max-eta multipliers alone (0.1-6) the reward averages
        only the last few discriminators (docs/benchmarks.md, Point Maze feature
        rewards); the linear TR-loss schedule falls to 0 at the end of the run.
      normalize_disc_inputs: standardise the discriminator's states with the demo
        observations' mean/std (fixed for the run, so old buffer members stay valid).
      negligible_weight: not in the paper; the fitted model skips buffer members whose
        summed weight in the corrected reward is below it, and R_fit's regression while
        R_fit's weight is (``trirl.reward_buffer``, "Negligible weights"): the reward
        moves by at most this times the largest logit (1e-7: float32's resolution),
        and k = 100 costs about half its member evaluations at HalfCheetah's etas.
        0: evaluate and fit everything, as the paper.
      ppo: policy optimisation; ``entropy_coef`` is 1/beta [8e-5, 5e-3];
        ``trust_region`` holds the TRPL bounds (mean [2e-4, 5e-3], cov [1e-4, 4e-3],
        regression loss coefficient [0.4, 0.6]).
      disc: the discriminator (LR [8e-5, 3e-4], 20-30 steps, gradient penalty 0.005);
        its ``inputs`` and ``loss`` are derived (:attr:`discriminator`).
      fit: the R_fit regression.
    """

    algo: str = "trirl"
    gail_reward: str = "log_d"
    variant: str = "max_eta"
    inputs: str = "sa"
    reward_model: str = "fitted"
    feature_names: tuple[str, ...] = ()
    eps: float = 0.6
    capacity: int = 100
    eta_init: float = 80.0
    eta_schedule: str = "linear"
    reward_eta_floor: float = 0.0
    normalize_disc_inputs: bool = True
    negligible_weight: float = 1e-7
    ppo: PPOConfig = dataclasses.field(default_factory=_default_ppo)
    disc: disc.DiscriminatorConfig = dataclasses.field(default_factory=_default_disc)
    fit: rb.RewardFitConfig = dataclasses.field(default_factory=rb.RewardFitConfig)

    def __post_init__(self):
        def choose(name, value, options):
            if value not in options:
                raise TrirlError(f"TRIRL {name} {value!r} is not one of {', '.join(options)}")

        choose("algo", self.algo, ALGOS)
        choose("gail_reward", self.gail_reward, GAIL_REWARDS)
        choose("variant", self.variant, VARIANTS)
        choose("inputs", self.inputs, INPUTS)
        choose("eta_schedule", self.eta_schedule, ETA_SCHEDULES)
        choose("reward_model", self.reward_model, REWARD_MODELS)
        if self.feature_names and self.reward_model != "features":
            raise TrirlError("TRIRL feature_names selects the base features of --reward-model "
                             "features; drop it or add --reward-model features")
        if self.reward_model == "features" and self.variant not in ("max_eta", "tr_loss"):
            raise TrirlError(f"TRIRL variant {self.variant!r} keeps per-member step sizes, which "
                             "the features reward model does not have; use variant max_eta or "
                             "tr_loss with --reward-model features")
        if not 0.0 < self.eps <= 1.0:
            raise TrirlError(f"TRIRL eps={self.eps} must be in (0, 1] (paper: 0.45 - 0.75)")
        if self.eta_init < 0:
            raise TrirlError(f"TRIRL eta_init={self.eta_init} must be >= 0 (paper: 60 - 100)")
        if self.reward_eta_floor < 0:
            raise TrirlError(f"TRIRL reward_eta_floor={self.reward_eta_floor} must be >= 0 "
                             "(0: the paper's steps)")
        if not self.ppo.entropy_coef > 0:
            raise TrirlError(f"TRIRL needs ppo.entropy_coef > 0 (it is 1/beta; paper: 8e-5 - "
                             f"5e-3), got {self.ppo.entropy_coef}")
        if self.algo != "trirl":
            # Fail loudly rather than silently ignore a TRIRL-only choice on a baseline.
            if self.variant != "max_eta" or self.reward_model != "fitted":
                raise TrirlError(f"TRIRL algo {self.algo!r} has no variant or reward model "
                                 "(they are TRIRL's reward correction); drop --variant / "
                                 "--reward-model or use --algo trirl")
            if self.algo == "airl" and self.inputs != "sa":
                raise TrirlError(f"TRIRL algo 'airl' learns g(s) and h(s) from (s, a, s') "
                                 f"transitions with actions, so inputs={self.inputs!r} does not "
                                 "apply; drop --inputs (AIRL needs demos with actions)")
        elif self.variant != "tr_loss" and self.ppo.trust_region is None:
            raise TrirlError(f"TRIRL variant {self.variant!r} needs ppo.trust_region (the TRPL "
                             "bounds); use variant tr_loss for an update without projection")
        self.buffer  # noqa: B018 -- validates capacity once, where the buffer is defined
    @property
    def beta(self) -> float:
        """Inverse temperature of the IRL objective, ``1 / ppo.entropy_coef``."""
        return 1.0 / self.ppo.entropy_coef

    @property
    def features(self) -> bool:
        return self.reward_model == "features"

    @property
    def retrospective(self) -> bool:
        return self.variant in ("retrospective_eta", "no_fit")

    @property
    def baseline(self) -> bool:
        return self.algo != "trirl"

    @property
    def policy_ppo(self) -> PPOConfig:
        """The PPO config the policy trains with: without projection for ``tr_loss`` and
        for the baselines (their papers and App. C.5: plain clipped PPO; the projection
        is part of TRIRL)."""
        if self.variant == "tr_loss" or self.baseline:
            return dataclasses.replace(self.ppo, trust_region=None)
        return self.ppo

    @property
    def discriminator(self) -> disc.DiscriminatorConfig:
        """The discriminator the run trains: ``disc`` with the run's ``inputs`` and the
        algorithm's loss. TRIRL's reward update needs logits that estimate
        log rho_E / rho_pi, which only the logistic loss gives; AMP's is least squares."""
        loss = "least_squares" if self.algo == "amp" else "logistic"
        return dataclasses.replace(self.disc, inputs=self.inputs, loss=loss)

    @property
    def buffer(self) -> rb.RewardBufferConfig:
        return rb.RewardBufferConfig(capacity=self.capacity, use_fit=self.variant != "no_fit",
                                     use_eta=True, disc=self.discriminator, fit=self.fit,
                                     negligible_weight=self.negligible_weight)


def config_record(config: TRIRLConfig) -> dict:
    """The config as ``config.json`` holds it: ``disc`` as the run trains it (its
    derived inputs and loss), so the file says what ran."""
    return {**dataclasses.asdict(config), "disc": dataclasses.asdict(config.discriminator)}
