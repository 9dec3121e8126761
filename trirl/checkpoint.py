"""Orbax checkpoints of whole training states, atomic, keeping the last few.

A checkpoint holds the complete state pytree (parameters, optimiser states,
normalisers, environment states, RNG keys, iteration counters) plus a small JSON
record, so ``--resume`` continues bit-for-bit where the run stopped. Orbax writes into
a temporary directory and renames it when complete, so an interrupted save never
leaves a checkpoint that looks valid; older checkpoints beyond ``max_to_keep`` are
deleted only after the new one is committed.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

# Orbax logs every save at INFO/WARNING level through absl; progress is ours to show.
logging.getLogger("absl").setLevel(logging.ERROR)


def _nonempty_leaves(tree: Any) -> dict:
    """The leaves of ``tree`` keyed by position, without zero-size arrays.

    Orbax refuses zero-size arrays, and physics states have some (e.g. ``act`` of a
    model without actuator dynamics). They carry no values, so restore takes them
    from the template state.
    """
    return {f"{i:05d}": leaf for i, leaf in enumerate(jax.tree.leaves(tree))
            if getattr(leaf, "size", 1) > 0}


class Checkpointer:
    """Save/restore ``(state, record)`` pairs under ``directory/<step>``."""

    def __init__(self, directory: str | Path, max_to_keep: int = 3):
        self.directory = Path(directory).resolve()
        options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                               enable_async_checkpointing=False)
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    def save(self, step: int, state: Any, record: Optional[dict] = None) -> None:
        """Write checkpoint ``step`` and block until it is committed on disk."""
        args = ocp.args.Composite(state=ocp.args.StandardSave(_nonempty_leaves(state)),
                                  record=ocp.args.JsonSave(record or {}))
        self._manager.save(int(step), args=args, force=True)
        self._manager.wait_until_finished()

    def latest_step(self) -> Optional[int]:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def restore(self, like: Any, step: Optional[int] = None) -> tuple[Any, dict]:
        """Restore checkpoint ``step`` (default: latest) into the structure of ``like``
        (a state of the same config; only its shapes and dtypes are used)."""
        step = self.latest_step() if step is None else step
        # Restored as host arrays, then put on the default device uncommitted, exactly
        # like a freshly built state. (Restoring jax.Arrays gives committed ones next to
        # the uncommitted template leaves below; jit keys its cache on that, so a resumed
        # run compiled its step twice: for the mixed state, then for its own outputs.)
        shapes = jax.tree.map(ocp.utils.to_shape_dtype_struct, _nonempty_leaves(like))
        template = {k: np.zeros(s.shape, s.dtype) for k, s in shapes.items()}
        restored = self._manager.restore(
            step, args=ocp.args.Composite(state=ocp.args.StandardRestore(template),
                                          record=ocp.args.JsonRestore()))
        leaves, treedef = jax.tree.flatten(like)
        saved = restored["state"]
        leaves = [jnp.asarray(saved[f"{i:05d}"]) if f"{i:05d}" in saved
                  else jnp.zeros(np.shape(leaf), leaf.dtype)  # zero-size: nothing saved
                  for i, leaf in enumerate(leaves)]
        return jax.tree.unflatten(treedef, leaves), dict(restored["record"] or {})

    def restore_leading(self, like: Any, step: Optional[int] = None) -> Any:
        """The first leaves of checkpoint ``step`` (default: latest), in the structure
        of ``like``: a state whose pytree *begins* with ``like``'s (a learner's state
        begins with its ``PPOState``) gives back that part without the rest's template.
        The saved shapes come from the checkpoint's own metadata."""
        step = self.latest_step() if step is None else step
        saved = ocp.StandardCheckpointer().metadata(self.directory / str(step) / "state")
        saved = getattr(saved, "item_metadata", saved)
        template = {k: np.zeros(m.shape, m.dtype) for k, m in saved.items()}
        restored = self._manager.restore(
            step, args=ocp.args.Composite(state=ocp.args.StandardRestore(template)))["state"]
        leaves, treedef = jax.tree.flatten(like)
        leaves = [jnp.asarray(restored[f"{i:05d}"]) if f"{i:05d}" in restored
                  else jnp.zeros(np.shape(leaf), leaf.dtype)  # zero-size: nothing saved
                  for i, leaf in enumerate(leaves)]
        return jax.tree.unflatten(treedef, leaves)

    def close(self) -> None:
        self._manager.close()
