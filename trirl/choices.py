"""The names a TRIRL run's settings choose from, in one place.

Dependency-free on purpose: the command line lists them as ``click.Choice`` options
without importing JAX, and :mod:`trirl.config` validates against the same tuples.
"""

ALGOS = ("trirl", "gail", "airl", "amp")
VARIANTS = ("max_eta", "tr_loss", "retrospective_eta", "no_fit")
# GAIL's policy reward from the discriminator logit z, D = sigmoid(z) (App. C.1):
# log D (the paper's), -log(1 - D), or log D - log(1 - D) = z.
GAIL_REWARDS = ("log_d", "neg_log_one_minus_d", "logit")
INPUTS = ("sa", "ss", "sas")
REWARD_MODELS = ("fitted", "features")
ETA_SCHEDULES = ("linear", "constant")
