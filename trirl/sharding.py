"""Placing the training state on devices: the env batch is sharded over local devices.

Every training loop (``trirl expert``, ``trirl learn`` and its baselines) steps a
seed-stacked state whose environments carry a leading ``(seeds, num_envs)`` pair of axes.
On a machine with several local devices (``jax.local_devices()``: GPUs, or CPU devices
made with ``XLA_FLAGS=--xla_force_host_platform_device_count=N``), :func:`for_training`
gives a :class:`Placement` over a one-axis mesh ``("batch",)`` of all of them, which

* shards the *env batch* -- axis 1, after the seed axis -- across the devices, and
  replicates everything else (:meth:`Placement.shardings`);
* jits the iteration with those shardings on its state argument and on the state it
  returns (:meth:`Placement.jit`), so XLA's SPMD partitioner keeps the state where it
  is from iteration to iteration: each device steps ``num_envs / N`` environments and
  the collectives (all-gathers for the minibatches, all-reduces for statistics) are
  inserted by XLA.

Which leaves carry the env batch
--------------------------------
The rule is structural, not a guess from shapes: inside every :class:`trirl.ppo.PPOState`
of the state (the expert's state is one; a TRIRL/baseline state holds one as ``.ppo``),
the leaves of ``env_state`` (the batched ``EnvState``: physics state, observations,
flags, per-env keys and metrics, all built by ``vmap`` over ``num_envs``) and
``episode_return`` are sharded along axis 1; they are checked to have
``shape[1] == num_envs`` (``episode_return.shape[1]``); zero-size ones (physics arrays
of absent model parts) hold nothing and are replicated. Every other leaf -- policy and
critic parameters, optimiser states, normalisers, the discriminator and its reward
buffer, R_fit, stored policies, PRNG keys, counters -- is replicated. Rollouts,
advantages and rewards are intermediate values inside the jitted iteration: XLA
propagates the env-batch sharding to them from the environment state.

Results. Sharded and one-device runs draw the same random numbers (JAX's partitionable
threefry, the default since jax 0.5) and do the same per-environment arithmetic; only
reductions over the env batch (observation statistics, loss and metric means) may sum
in another order across devices, so they agree to float32 rounding, not always bit for
bit (``tests/test_sharding.py``). With one device nothing is sharded and the iteration
is the plain ``jax.jit`` it always was.

MuJoCo C backend: not sharded
-----------------------------
The C backend steps MuJoCo through a host callback (``trirl.envs.c_backend``). Under a
sharded jit, with 2 CPU devices and jax 0.9.2, the partitioner does not split the
callback (measured): on CPU, ``buffer_callback`` carries no sharding, so the partitioner
*replicates* it -- each device all-gathers the whole env batch and calls MuJoCo on all
of it, N times the host work for identical results; on other platforms
``pure_callback`` is pinned to device 0 (the batch is gathered there, stepped in one
call, and scattered back). Both give the same numbers as one device, neither uses more
than one device for the physics, and the C backend already steps the batch on every CPU
core. So with ``backend="c"`` the state stays on one device and :func:`for_training`
says so in a one-line note.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from trirl.errors import TrirlError

AXIS = "batch"
# The PPOState fields whose leaves have the env batch on axis 1 (see the docstring).
ENV_BATCH_FIELDS = ("env_state", "episode_return")


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where a run's state lives: ``mesh`` over the devices in use (None: one device,
    nothing is placed or constrained), and an optional one-line ``note`` to show."""

    mesh: Optional[Mesh] = None
    note: Optional[str] = None

    @property
    def devices(self) -> int:
        """Number of devices the env batch is sharded over (1 when not sharded)."""
        return 1 if self.mesh is None else int(self.mesh.size)

    def shardings(self, state: Any) -> Any:
        """A pytree of ``NamedSharding`` like ``state`` (arrays or shape structs): the env
        batch of every ``PPOState`` along axis 1, everything else replicated."""
        from trirl.ppo import PPOState  # lazy: trirl.ppo imports the envs

        replicated = NamedSharding(self.mesh, PartitionSpec())
        batch = NamedSharding(self.mesh, PartitionSpec(None, AXIS))

        def node(x):
            if not isinstance(x, PPOState):
                return replicated
            num_envs = x.episode_return.shape[1]
            for name in ENV_BATCH_FIELDS:
                for path, leaf in jax.tree_util.tree_leaves_with_path(getattr(x, name)):
                    if len(leaf.shape) < 2 or leaf.shape[1] != num_envs:
                        raise TrirlError(
                            f"internal: PPOState.{name}{jax.tree_util.keystr(path)} has shape "
                            f"{tuple(leaf.shape)}, not (seeds, num_envs={num_envs}, ...); "
                            "trirl.sharding cannot place it")
            if num_envs % self.devices:
                raise TrirlError(_divisibility_message(num_envs, self.devices))
            env_batch = lambda leaf: batch if _size(leaf) else replicated  # noqa: E731
            return x.replace(**{
                f.name: jax.tree.map(env_batch if f.name in ENV_BATCH_FIELDS
                                     else lambda _: replicated, getattr(x, f.name))
                for f in dataclasses.fields(x)})

        return jax.tree.map(node, state, is_leaf=lambda x: isinstance(x, PPOState))

    def place(self, state: Any) -> Any:
        """``state`` on the mesh (a restored or freshly built state); unchanged on one
        device."""
        if self.mesh is None:
            return state
        return jax.device_put(state, self.shardings(state))

    def replicate(self, tree: Any) -> Any:
        """Every leaf of ``tree`` on every device (e.g. the demonstrations, read by each
        device every iteration); unchanged on one device."""
        if self.mesh is None:
            return tree
        return jax.device_put(tree, NamedSharding(self.mesh, PartitionSpec()))

    def jit(self, fn: Callable[..., tuple]) -> Callable[..., tuple]:
        """``jax.jit(fn)`` for ``fn(state, *args) -> (state, ...)``; on several devices the
        state argument and the returned state keep :meth:`shardings` and the other
        arguments are replicated. A state not on the mesh (e.g. restored from a
        checkpoint) is placed first, so it runs the same compiled program. Built per
        state structure on first use (the shardings follow the state's pytree)."""
        if self.mesh is None:
            return jax.jit(fn)
        replicated = NamedSharding(self.mesh, PartitionSpec())
        built: dict = {}  # state treedef -> (jitted fn, state shardings, their leaves)

        def call(state, *args):
            treedef = jax.tree.structure(state)
            if treedef not in built:
                shardings = self.shardings(state)

                def constrained(state, *args):
                    out = fn(state, *args)
                    return (jax.lax.with_sharding_constraint(out[0], shardings),) + tuple(out[1:])

                jitted = jax.jit(constrained,
                                 in_shardings=(shardings,) + (replicated,) * len(args))
                built[treedef] = (jitted, shardings, jax.tree.leaves(shardings))
            jitted, shardings, wanted = built[treedef]
            # Place what is not on the mesh yet (a fresh state, one restored from a
            # checkpoint) first: jit would move it too, but it traces and compiles a
            # separate program for such inputs, and again for its own outputs.
            if any(getattr(x, "sharding", None) != s
                   for x, s in zip(jax.tree.leaves(state), wanted)):
                state = jax.device_put(state, shardings)
            if any(getattr(x, "sharding", None) != replicated for x in jax.tree.leaves(args)):
                args = jax.device_put(args, replicated)
            return jitted(state, *args)

        return call


def _size(leaf) -> int:
    return int(np.prod(leaf.shape))


def _divisibility_message(num_envs: int, devices: int) -> str:
    return (f"ppo.num_envs={num_envs} is not divisible by the {devices} local devices the env "
            f"batch is sharded over; use a multiple of {devices} (e.g. --set "
            f"ppo.num_envs={-(-num_envs // devices) * devices}) or make fewer devices visible "
            "(e.g. CUDA_VISIBLE_DEVICES=0)")


def for_training(backend: str, num_envs: int,
                 devices: Optional[Sequence[jax.Device]] = None,
                 say: Optional[Callable[[str], Any]] = None) -> Placement:
    """The :class:`Placement` of a run stepping ``num_envs`` environments per seed on the
    ``backend`` physics ("mjx" or "c"), over ``devices`` (default: ``jax.local_devices()``).

    One device: no mesh (nothing changes). Several: a ``("batch",)`` mesh over all of
    them for MJX; for the C backend no mesh and a note (module docstring), passed to
    ``say`` when given (the training loops print it).

    Raises:
      TrirlError: ``num_envs`` is not divisible by the number of devices (MJX).
    """
    devices = list(jax.local_devices() if devices is None else devices)
    if len(devices) <= 1:
        return Placement()
    if backend != "mjx":
        placement = Placement(note=f"note: {len(devices)} local devices, but the MuJoCo "
                                   f"{backend!r} backend steps physics on the host, so the "
                                   "state stays on one device (use --backend mjx to shard "
                                   "the env batch)")
        if say is not None:
            say(placement.note)
        return placement
    if num_envs % len(devices):
        raise TrirlError(_divisibility_message(num_envs, len(devices)))
    return Placement(mesh=Mesh(np.asarray(devices), (AXIS,)))
