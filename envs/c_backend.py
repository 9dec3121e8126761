"""MuJoCo C physics behind the functional, jittable env API (``backend="c"``).

Why
---
On a CPU, MuJoCo C steps these models several times faster than MJX (float64 C against
float32 XLA; 10-30x for the locomotion robots, 2-4x for the trivial Point Maze on the
2-core machine of docs/benchmarks.md), and most laptops and CI machines have no GPU. The
environments, PPO and TRIRL are ``lax.scan`` programs over a pure ``env.step``, so the C
backend keeps that shape: :meth:`CBackend.step` is a JAX host callback into MuJoCo C
(pure: same inputs, same outputs), and nothing above the backend changes. MJX stays the
backend for accelerators and for fully compiled programs.

The callback is ``jax.experimental.buffer_callback`` on CPU, ``jax.pure_callback``
elsewhere (see :func:`_host_callback`): both are pure host calls, but the first reads and
writes XLA's buffers in place, ~10 us per call against ~140 us here, which decides whether
small batches of a cheap model (Point Maze: ~6 us per env step) gain at all.

One host call per batched step
------------------------------
The callback declares ``vmap_method="broadcast_all"``: under ``vmap`` -- over envs
(``AutoReset``) and again over seeds (``trirl.runner``) -- JAX does not loop over the
batch but calls the host function once with every leading batch axis; the host side
flattens them and steps all simulations in one C call:

- envs that do not read contact forces (Point Maze, HalfCheetah, Hopper, Walker2d):
  :class:`mujoco.batch.Batch`, which loads each simulation's state row into an
  ``MjData``, runs ``frame_skip`` ``mj_step`` and copies the derived fields out, on a
  C++ thread pool, with no Python per simulation. It is bit-identical to a loop of
  ``mj_step`` over one ``MjData`` per simulation (MuJoCo's own guarantee, and
  ``tests/test_backends.py`` checks it against such a loop).
- envs that read ``cfrc_ext`` (Ant, Humanoid): ``mj_rnePostConstraint`` must run after
  the last substep, which ``Batch`` cannot do (it would need the contact forces, which
  live in ``mjData``'s arena and are not copied out). These step a Python loop of
  ``mj_setState`` / ``mj_step`` / ``mj_rnePostConstraint`` / ``mj_getState`` over
  per-thread ``MjData`` on a thread pool (MuJoCo releases the GIL inside ``mj_step``).
  The loop's Python overhead (~10 us per simulation) is about 1% of these models' step.

``mujoco.rollout`` was the other candidate for the stateless batch step: it returns
only state and sensor rows, so the derived arrays (body poses, ``cinert``, ``cvel``,
actuator forces) would need a second pass with Python per simulation, and its state
rows leave out the solver warm start; ``Batch`` returns both in the same call.

Threads: one per CPU this process may run on (``os.sched_getaffinity``). Models are
never copied per call: each ``Batch`` (one per distinct batch size, which is fixed in a
compiled program) and each per-thread ``MjData`` is made once and reused.

State and precision
-------------------
The physics state carried from step to step is MuJoCo's ``mjSTATE_INTEGRATION`` row
(time, qpos, qvel, act, actuator history, solver warm start, ctrl, applied forces,
equality flags, mocap, user data, plugin and plastic state): everything ``mj_step``
reads that is not recomputed, so a step continues exactly as an uninterrupted
``MjData`` would (``mj_getState`` documents this use). JAX computes in float32 unless
x64 is enabled, so the row is kept as the *bits* of its float64 values, two uint32 per
number (``CData.state``): the physics stays float64 end to end, bit for bit, and the
only rounding is in the float32 copies of the named arrays the env definitions read
(``CData.arrays``). ``jnp.where`` (``AutoReset``'s restart), checkpoints and ``vmap``
move uint32 leaves exactly.

Semantics match Gymnasium's MuJoCo envs and the MJX backend: derived arrays are those
``mj_step`` leaves (computed by the forward pass of the last substep, before its
integration), ``cfrc_ext`` comes from ``mj_rnePostConstraint`` after the last substep
(only for envs that read it; zeros otherwise) and is zero right after ``init``, which
is ``mj_resetData`` + (qpos, qvel) + ``mj_forward``, as Gymnasium's ``reset``. If
MuJoCo finds the simulation unstable it resets that simulation to the model's
defaults with a warning, as C MuJoCo does everywhere (MJX would produce NaN instead).
"""

from __future__ import annotations

import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

import jax
import jax.numpy as jnp
import mujoco
import mujoco.batch as mujoco_batch
import numpy as np
from flax import struct

from trirl.envs.physics import PhysicsArrays

try:  # experimental in jax 0.9 (pinned); see _host_callback for why it is preferred
    from jax.experimental.buffer_callback import buffer_callback as _buffer_callback
except ImportError:  # pragma: no cover
    _buffer_callback = None

# Derived quantities read from MjData after a step (the rest of PhysicsArrays --
# qpos, qvel, time -- is sliced out of the state row).
DERIVED = ("xpos", "xquat", "xipos", "cinert", "cvel", "qfrc_actuator")
STATE_SPEC = int(mujoco.mjtState.mjSTATE_INTEGRATION)


def default_num_threads() -> int:
    """CPUs this process may run on (affinity-aware; ``os.cpu_count`` elsewhere)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@struct.dataclass
class CData:
    """The C backend's physics state: a small pytree, batched by ``vmap``.

    Attributes:
      state: the ``mjSTATE_INTEGRATION`` row as the bits of its float64 values,
        ``(2 * nstate,)`` uint32 (``np.float64`` viewed as ``np.uint32``): lossless in
        float32 JAX, so the physics never leaves float64.
      arrays: float32 copies of the named physics arrays the env definitions read.
    """

    state: jax.Array
    arrays: PhysicsArrays


def _component_slice(model: mujoco.MjModel, component: mujoco.mjtState) -> slice:
    """Where one state component sits in an ``mjSTATE_INTEGRATION`` row: components are
    stored in the order of their bits, so its offset is the size of the lower ones."""
    bit = int(component)
    start = mujoco.mj_stateSize(model, STATE_SPEC & (bit - 1))
    return slice(start, start + mujoco.mj_stateSize(model, bit))


class _Host:
    """The host side of the callbacks: MuJoCo objects built once, reused every call.

    ``init(out, qpos, qvel)`` and ``step(out, bits, ctrl)`` take arrays whose leading
    axes are the batch (any number of them: ``vmap`` over seeds and envs) and write their
    results into ``out = (state bits, packed float32 arrays)`` with the same leading axes:
    with ``buffer_callback`` these are XLA's own output buffers, so nothing is copied on
    the way back. A lock serialises calls, since the reused ``MjData``/``Batch`` objects
    hold one call's simulations at a time (XLA may run two independent callbacks
    concurrently).
    """

    def __init__(self, model: mujoco.MjModel, frame_skip: int, contact_forces: bool,
                 num_threads: int):
        self.model = model
        self.frame_skip = int(frame_skip)
        self.contact_forces = bool(contact_forces)
        self.num_threads = int(num_threads)
        self.nstate = mujoco.mj_stateSize(model, STATE_SPEC)
        self.slices = {name: _component_slice(model, bit) for name, bit in (
            ("time", mujoco.mjtState.mjSTATE_TIME), ("qpos", mujoco.mjtState.mjSTATE_QPOS),
            ("qvel", mujoco.mjtState.mjSTATE_QVEL), ("ctrl", mujoco.mjtState.mjSTATE_CTRL))}
        template = mujoco.MjData(model)
        self.shapes = {name: tuple(getattr(template, name).shape)
                       for name in DERIVED + ("cfrc_ext",)}
        # Sleeping bodies keep state outside the rows; Batch then needs an MjData per
        # simulation (persistent). None of trirl's models enable it.
        self.persistent = bool(model.opt.enableflags & int(mujoco.mjtEnableBit.mjENBL_SLEEP))
        self.lock = threading.Lock()
        self._batches: dict[int, tuple] = {}
        self._datas: Optional[list] = None
        self._pool: Optional[ThreadPoolExecutor] = None
        self.calls = 0          # host calls made (tests: one per batched step)
        self.last_batch = 0     # simulations in the last call
        # The float32 arrays leave in ONE packed (width,) row per simulation: one output
        # buffer instead of ten costs less per call; CBackend slices it in JAX.
        # time, qpos and qvel lead both the state row and the packed row, in that order,
        # so they leave in one copy.
        names = ("time", "qpos", "qvel") + DERIVED + (("cfrc_ext",) if contact_forces else ())
        sizes = {"qpos": model.nq, "qvel": model.nv, "time": 1,
                 **{name: math.prod(shape) for name, shape in self.shapes.items()}}
        offsets = np.cumsum([0] + [sizes[name] for name in names])
        self.columns = {name: (int(offsets[i]), int(offsets[i + 1]))
                        for i, name in enumerate(names)}
        self.width = int(offsets[-1])
        self.lead = self.columns["qvel"][1]
        assert (self.slices["time"].start, self.slices["qvel"].stop) == (0, self.lead)

    # -- engines ----------------------------------------------------------------------

    def _batch(self, n: int):
        """``(Batch, bound derived fields)`` for ``n`` simulations, made once per size."""
        if n not in self._batches:
            batch = mujoco_batch.Batch(self.model, n, self.num_threads,
                                       persistent=self.persistent)
            bound = {name: batch.bind(name) for name in DERIVED}
            self._batches[n] = (batch, bound)
        return self._batches[n]

    def _thread_datas(self):
        """Per-thread ``MjData`` and the pool for the loop engine, made once."""
        if self._datas is None:
            self._datas = [mujoco.MjData(self.model) for _ in range(self.num_threads)]
            if self.num_threads > 1:
                self._pool = ThreadPoolExecutor(self.num_threads,
                                                thread_name_prefix="trirl-mujoco")
        return self._datas

    def _map_chunks(self, n: int, work) -> None:
        """``work(data, lo, hi)`` on contiguous chunks of the batch, one per thread."""
        datas = self._thread_datas()
        k = min(len(datas), n)
        bounds = [(i * n // k, (i + 1) * n // k) for i in range(k)]
        if self._pool is None or k == 1:
            for (lo, hi), d in zip(bounds, datas):
                work(d, lo, hi)
            return
        futures = [self._pool.submit(work, d, lo, hi) for (lo, hi), d in zip(bounds, datas)]
        for f in futures:
            f.result()

    # -- calls ------------------------------------------------------------------------

    def _views(self, out, n: int):
        """The output buffers as ``(n, nstate)`` float64 rows and ``(n, width)`` float32."""
        bits, packed = out
        return (np.asarray(bits).reshape(n, 2 * self.nstate).view(np.float64),
                np.asarray(packed).reshape(n, self.width))

    def _write(self, rows_out, packed, rows, derived) -> None:
        rows_out[...] = rows
        packed[:, :self.lead] = rows[:, :self.lead]          # time, qpos, qvel
        for name in DERIVED:
            start, stop = self.columns[name]
            packed[:, start:stop] = derived[name].reshape(len(rows), -1)
        if self.contact_forces:
            start, stop = self.columns["cfrc_ext"]
            # after init (no "cfrc_ext" computed): zero, as after Gymnasium's reset
            packed[:, start:stop] = (derived["cfrc_ext"].reshape(len(rows), -1)
                                     if "cfrc_ext" in derived else 0.0)

    def init(self, out, qpos, qvel) -> None:
        qpos, qvel = np.asarray(qpos), np.asarray(qvel)
        n = math.prod(qpos.shape[:-1])
        rows_out, packed = self._views(out, n)
        with self.lock:
            self.calls, self.last_batch = self.calls + 1, n
            batch, bound = self._batch(n)
            # Reset to the model's defaults (time 0, no warm start, ctrl 0), place the
            # state and run mj_forward: Gymnasium's reset. No mj_rnePostConstraint, so
            # cfrc_ext is zero, as after Gymnasium's reset.
            batch.reset(stage=int(mujoco.mjtStage.mjSTAGE_NONE))
            batch.state[:, self.slices["qpos"]] = qpos.reshape(n, -1)
            batch.state[:, self.slices["qvel"]] = qvel.reshape(n, -1)
            batch.forward()
            self._write(rows_out, packed, batch.state, bound)

    def step(self, out, bits, ctrl) -> None:
        bits, ctrl = np.asarray(bits), np.asarray(ctrl)
        n = math.prod(bits.shape[:-1])
        rows_out, packed = self._views(out, n)
        rows = bits.reshape(n, 2 * self.nstate).view(np.float64)
        with self.lock:
            self.calls, self.last_batch = self.calls + 1, n
            if self.contact_forces:
                self._loop_step(rows, ctrl.reshape(n, -1), rows_out, packed)
                return
            batch, bound = self._batch(n)
            batch.state[...] = rows
            batch.state[:, self.slices["ctrl"]] = ctrl.reshape(n, -1)
            batch.step(nstep=self.frame_skip)
            self._write(rows_out, packed, batch.state, bound)

    def _loop_step(self, rows, ctrl, rows_out, packed) -> None:
        m, nstep, ctrl_slice = self.model, self.frame_skip, self.slices["ctrl"]
        names = DERIVED + ("cfrc_ext",)
        # float64 staging per call (the packed output is float32)
        derived = {name: np.empty((len(rows),) + self.shapes[name]) for name in names}
        new = np.empty_like(rows)
        new[...] = rows
        new[:, ctrl_slice] = ctrl

        def work(d, lo, hi):
            for i in range(lo, hi):
                mujoco.mj_setState(m, d, new[i], STATE_SPEC)
                mujoco.mj_step(m, d, nstep)
                mujoco.mj_rnePostConstraint(m, d)
                mujoco.mj_getState(m, d, new[i], STATE_SPEC)
                for name in names:
                    derived[name][i] = getattr(d, name)

        self._map_chunks(len(rows), work)
        self._write(rows_out, packed, new, derived)


def _host_callback(fn, result_specs, example_arg):
    """``fn(out, *args)`` (writes its results into ``out``) as a JAX function whose
    batched form under ``vmap`` is ONE call with every leading batch axis
    (``example_arg``: the unbatched shape of the first argument).

    On CPU it is ``jax.experimental.buffer_callback``: the host function reads XLA's
    input buffers and writes its output buffers in place, about 10 us per call here,
    against about 150 us for ``jax.pure_callback``, which copies inputs into new
    ``jax.Array`` s and outputs back (measured on CPU-2; at Point Maze's 12 us per env
    step the difference decides whether small batches gain at all). Elsewhere (a GPU
    process asked for backend "c", or a JAX without ``buffer_callback``) it is
    ``jax.pure_callback`` with the same host function, outputs allocated per call.
    """
    if _buffer_callback is not None and jax.default_backend() == "cpu":
        def call(ctx, out, *args):
            fn(out, *args)
        return _buffer_callback(call, result_specs, vmap_method="broadcast_all")

    unbatched_ndim = len(example_arg.shape)

    def pure(*args):
        args = [np.asarray(a) for a in args]
        batch_shape = args[0].shape[:args[0].ndim - unbatched_ndim]
        out = jax.tree.map(lambda s: np.empty(batch_shape + s.shape, s.dtype), result_specs)
        fn(out, *args)
        return out

    return lambda *args: jax.pure_callback(pure, result_specs, *args,
                                           vmap_method="broadcast_all")


class CBackend:
    """MuJoCo C physics: ``init``/``step`` on :class:`CData` and ``arrays`` to read it.

    The same three methods as ``MjxBackend``; see the module docstring for how a
    batched, jitted step reaches MuJoCo C and why the state is stored as float64 bits.
    """

    name = "c"

    def __init__(self, mj_model: mujoco.MjModel, frame_skip: int, contact_forces: bool = False,
                 num_threads: Optional[int] = None):
        self.mj_model = mj_model
        self.frame_skip = int(frame_skip)
        self.contact_forces = bool(contact_forces)
        self.num_threads = int(num_threads or default_num_threads())
        host = self.host = _Host(mj_model, frame_skip, contact_forces, self.num_threads)
        self._shapes = {"qpos": (mj_model.nq,), "qvel": (mj_model.nv,), "time": (),
                        **host.shapes}
        result = (jax.ShapeDtypeStruct((2 * host.nstate,), jnp.uint32),
                  jax.ShapeDtypeStruct((host.width,), jnp.float32))
        # Built once: a callback object made per call would be a new primitive parameter
        # each time, and un-jitted calls would compile again.
        self._init = _host_callback(host.init, result,
                                    jax.ShapeDtypeStruct((mj_model.nq,), jnp.float32))
        self._step = _host_callback(host.step, result, result[0])

    def _data(self, bits, packed) -> CData:
        arrays = {name: packed[start:stop].reshape(self._shapes[name])
                  for name, (start, stop) in self.host.columns.items()}
        if not self.contact_forces:
            # Not computed: env definitions without uses_contact_forces never read it.
            arrays["cfrc_ext"] = jnp.zeros(self._shapes["cfrc_ext"], jnp.float32)
        return CData(state=bits, arrays=PhysicsArrays(**arrays))

    def init(self, qpos: jax.Array, qvel: jax.Array) -> CData:
        """Physics state at (qpos, qvel) with all derived quantities computed."""
        return self._data(*self._init(jnp.asarray(qpos, jnp.float32),
                                      jnp.asarray(qvel, jnp.float32)))

    def step(self, data: CData, ctrl: jax.Array) -> CData:
        """Advance ``frame_skip`` physics steps holding ``ctrl``."""
        return self._data(*self._step(data.state, jnp.asarray(ctrl, jnp.float32)))

    def arrays(self, data: CData):
        return data.arrays

    @staticmethod
    def state_rows(data: CData) -> np.ndarray:
        """The float64 ``mjSTATE_INTEGRATION`` rows of (a batch of) ``CData``, for
        ``mj_setState`` (tests, debugging)."""
        bits = np.ascontiguousarray(np.asarray(data.state, np.uint32))
        return bits.view(np.float64)
