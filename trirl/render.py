"""Pictures of a gait: ``trirl render RUN|DEMOS.npz -o gait.gif``.

Offscreen MuJoCo rendering on a headless machine (:func:`ensure_gl` picks EGL, then
OSMesa), written as an animated GIF with Pillow (a dependency of matplotlib, so nothing
new is installed).

- A run: its deterministic policy (seed ``seed_index``) on the run's env, MuJoCo C,
  from a reset until the episode ends or ``seconds`` pass. For the robots (and any run
  whose demonstrations keep their states) the demonstrations are replayed beside it:
  the learned gait on the left, the mocap on the right.
- A demo file: its states replayed (``qpos`` per row; motion capture converted by
  ``trirl demos convert`` keeps them).

Robots are drawn with their visual meshes (the asset cache's full model; the envs strip
them), joints matched by name (the G1's locked wrists at zero). The camera follows the
root body from the side.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from trirl.errors import TrirlError

GL_BACKENDS = ("egl", "osmesa")
INSTALL_HINT = ("install EGL (Debian/Ubuntu: apt-get install libegl1 libgl1-mesa-dri) or "
                "OSMesa (apt-get install libosmesa6), or set MUJOCO_GL to a backend that "
                "works here")
# Models to draw the robots with: the cached folder's file with meshes and a floor.
ROBOT_SCENES = {"unitree_g1": "scene_mjx.xml", "unitree_go2": "go2.xml"}
_chosen_gl: Optional[str] = None


# ------------------------------------------------------------------------ OpenGL


def _probe(backend: str) -> Optional[str]:
    """None if MuJoCo can open an offscreen context with ``MUJOCO_GL=backend`` (tried in
    a fresh interpreter: the choice is fixed at ``import mujoco``), else why not."""
    code = ("import mujoco\nctx = mujoco.GLContext(16, 16)\nctx.make_current()\n"
            "ctx.free()\n")
    env = {**os.environ, "MUJOCO_GL": backend}
    env.pop("PYOPENGL_PLATFORM", None)
    try:
        proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                              text=True, timeout=120)
    except subprocess.TimeoutExpired:
        return "timed out"
    if proc.returncode == 0:
        return None
    lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()]
    return (lines[-1] if lines else f"exit status {proc.returncode}")[:160]


def ensure_gl() -> str:
    """The offscreen OpenGL backend MuJoCo renders with: ``$MUJOCO_GL`` if set, else the
    first of EGL, OSMesa that works. Makes this process use it (the environment variable
    if MuJoCo is not imported yet, else MuJoCo's context class). One-line
    :class:`TrirlError` with what to install when none works."""
    global _chosen_gl
    if _chosen_gl is None:
        wanted = os.environ.get("MUJOCO_GL", "").strip().lower()
        tried = []
        for backend in ([wanted] if wanted else GL_BACKENDS):
            why = _probe(backend)
            if why is None:
                _chosen_gl = backend
                break
            tried.append(f"MUJOCO_GL={backend}: {why}")
        else:
            raise TrirlError(f"no offscreen OpenGL for MuJoCo rendering ({'; '.join(tried)}); "
                             f"fix: {INSTALL_HINT}")
    if "mujoco" not in sys.modules:
        os.environ["MUJOCO_GL"] = _chosen_gl
        return _chosen_gl
    import importlib

    from mujoco.rendering.classic import gl_context

    if getattr(gl_context, "_MUJOCO_GL", None) != _chosen_gl:
        gl_context.GLContext = importlib.import_module(f"mujoco.{_chosen_gl}").GLContext
    return _chosen_gl


# ------------------------------------------------------------------------ scenes


@dataclass
class Scene:
    """A model to draw an env's states with, and where each of its qpos comes from."""

    model: object
    qpos_from_env: np.ndarray     # render qpos index -> env qpos index, -1: keep qpos0
    track_body: int
    top_view: bool = False        # planar x-y tasks (Point Maze): the whole model from above


def _add_floor(spec) -> None:
    import mujoco

    tex = spec.add_texture(name="trirl_floor", type=mujoco.mjtTexture.mjTEXTURE_2D,
                           builtin=mujoco.mjtBuiltin.mjBUILTIN_CHECKER, width=300, height=300,
                           rgb1=[0.2, 0.3, 0.4], rgb2=[0.1, 0.2, 0.3])
    mat = spec.add_material(name="trirl_floor", texrepeat=[5, 5], texuniform=True)
    mat.textures[mujoco.mjtTextureRole.mjTEXROLE_RGB] = tex.name
    spec.worldbody.add_geom(name="trirl_floor", type=mujoco.mjtGeom.mjGEOM_PLANE,
                            size=[0, 0, 0.05], material="trirl_floor", contype=0,
                            conaffinity=0)
    spec.worldbody.add_light(pos=[0, 0, 4], dir=[0, 0, -1],
                             type=mujoco.mjtLightType.mjLIGHT_DIRECTIONAL)


def scene_of(env) -> Scene:
    """The model to draw ``env`` with: for robots the cached model with its meshes
    (:data:`ROBOT_SCENES`), with a floor if it has none; else the env's own model."""
    import mujoco

    robot = getattr(env, "robot_model", None)
    if robot in ROBOT_SCENES:
        from trirl.envs.robot_assets import robot_dir

        spec = mujoco.MjSpec.from_file(str(robot_dir(robot) / ROBOT_SCENES[robot]))
        model = spec.compile()
        if not (model.geom_type == mujoco.mjtGeom.mjGEOM_PLANE).any():
            _add_floor(spec)
            model = spec.compile()
    else:
        model = env.mj_model
    env_model = env.mj_model
    index = np.full(model.nq, -1, np.int64)
    env_joints = {env_model.joint(j).name: j for j in range(env_model.njnt)}
    widths = {0: 7, 1: 4, 2: 1, 3: 1}
    for j in range(model.njnt):
        name = model.joint(j).name
        if name in env_joints:
            e = env_joints[name]
            w = widths[int(model.jnt_type[j])]
            a, b = model.jnt_qposadr[j], env_model.jnt_qposadr[e]
            index[a:a + w] = np.arange(b, b + w)
    if model is env_model:
        index = np.arange(model.nq)
    track = 1 if model.nbody > 1 else 0
    slides = {tuple(np.round(model.jnt_axis[j], 6)) for j in range(model.njnt)
              if model.jnt_type[j] == mujoco.mjtJoint.mjJNT_SLIDE}
    planar = {(1.0, 0.0, 0.0), (0.0, 1.0, 0.0)} <= slides and not (
        model.jnt_type == mujoco.mjtJoint.mjJNT_FREE).any()
    return Scene(model, index, track, top_view=planar)


class _Painter:
    """Draws one scene's states into RGB frames with a side camera tracking the root."""

    def __init__(self, scene: Scene, width: int, height: int):
        import mujoco

        ensure_gl()
        self.scene = scene
        model = scene.model
        model.vis.global_.offwidth = max(model.vis.global_.offwidth, width)
        model.vis.global_.offheight = max(model.vis.global_.offheight, height)
        try:
            self.renderer = mujoco.Renderer(model, height, width)
        except Exception as exc:  # noqa: BLE001  (GL errors come as many types)
            raise TrirlError(f"MuJoCo could not open an offscreen renderer ({type(exc).__name__}"
                             f": {str(exc)[:120]}); fix: {INSTALL_HINT}") from None
        # Software GL (llvmpipe) is ~12x faster without shadows and floor reflections.
        self.renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
        self.renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False
        self.renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SKYBOX] = False  # smaller GIFs
        self.data = mujoco.MjData(model)
        self.camera = mujoco.MjvCamera()
        self.camera.type = mujoco.mjtCamera.mjCAMERA_FREE   # its lookat follows the root
        self.camera.distance = float(np.clip(1.7 * model.stat.extent, 1.5, 6.0))
        self.camera.azimuth = 90.0        # from the side (-y), the robots walk along +x
        self.camera.elevation = -10.0
        if scene.top_view:
            self.camera.elevation = -90.0
            self.camera.distance = float(1.1 * model.stat.extent)
            self.camera.lookat[:] = model.stat.center

    def frame(self, env_qpos: np.ndarray) -> np.ndarray:
        import mujoco

        model, data, index = self.scene.model, self.data, self.scene.qpos_from_env
        data.qpos[:] = model.qpos0
        known = index >= 0
        data.qpos[known] = env_qpos[index[known]]
        mujoco.mj_kinematics(model, data)
        mujoco.mj_camlight(model, data)
        if not self.scene.top_view:
            self.camera.lookat[:] = data.xpos[self.scene.track_body]
        self.renderer.update_scene(data, camera=self.camera)
        return self.renderer.render().copy()

    def close(self):
        self.renderer.close()


# ------------------------------------------------------------------------ states


def demo_states(path, episode: int = 0) -> tuple[object, np.ndarray]:
    """``(env, qpos (T, nq))`` of one episode of a demo file with states."""
    from trirl import demos as demos_lib, envs

    demos = demos_lib.load(path)
    if demos.qpos is None:
        raise TrirlError(f"demo file {path}: qpos: the file keeps no states to replay (only "
                         "observations); fix: render the run that recorded it, or convert the "
                         "motion capture again with `trirl demos convert` (which keeps them)")
    if not 0 <= episode < demos.num_episodes:
        raise TrirlError(f"demo file {path}: --episode {episode} out of range; it has "
                         f"{demos.num_episodes} episode(s)")
    env = envs.make(demos.metadata["env"], backend="c")
    demos = demos_lib.load(path, env=env)
    start, end = demos.episode_starts[episode], demos.episode_ends[episode]
    return env, demos.qpos[start:end]


def policy_states(run_dir, seed_index: int = 0, seconds: Optional[float] = None,
                  seed: int = 0) -> tuple[object, np.ndarray, bool]:
    """``(env, qpos (T, nq), fell)``: the run's deterministic policy from a reset on MuJoCo
    C for ``seconds`` (default: one episode), or until the episode ends (``fell``: it
    ended absorbing, a fall for the robots)."""
    import jax

    from trirl.runs import load_policy, open_run

    run = open_run(run_dir, backend="c")
    params = load_policy(run, seed_index)
    env = run.env
    steps = env.episode_length if seconds is None else min(int(round(seconds / env.dt)),
                                                           env.episode_length)
    step = jax.jit(env.step)
    act = jax.jit(lambda p, o, k: run.ppo.act_deterministic(p, o, k))
    state = env.reset(jax.random.key(seed))
    key = jax.random.key(seed + 1)
    qpos, fell = [np.asarray(env.backend.arrays(state.data).qpos, np.float64)], False
    for _ in range(steps):
        key, sub = jax.random.split(key)
        state = step(state, act(params, state.obs, sub))
        if bool(state.absorbing):
            fell = True
            break
        qpos.append(np.asarray(env.backend.arrays(state.data).qpos, np.float64))
        if bool(state.truncated):
            break
    return env, np.stack(qpos), fell


# ------------------------------------------------------------------------ output


def _label(frame: np.ndarray, text: str) -> np.ndarray:
    from PIL import Image, ImageDraw

    img = Image.fromarray(frame)
    ImageDraw.Draw(img).text((6, 4), text, fill=(255, 255, 255))
    return np.asarray(img)


def write_gif(path, frames: list, fps: float) -> None:
    """Write RGB frames ``(H, W, 3)`` uint8 as a looping GIF, atomically (a temporary file
    in the same directory renamed into place; nothing is left on failure)."""
    from PIL import Image

    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise TrirlError(f"{path}: directory {directory} does not exist; fix: create it first")
    # One palette for all frames (from a strip of up to 8 of them), no dithering: the
    # unchanged background then compresses between frames.
    pick = frames[::max(1, len(frames) // 8)][:8]
    palette = Image.fromarray(np.concatenate(pick, axis=0)).quantize(
        colors=128, method=Image.Quantize.MEDIANCUT)
    images = [Image.fromarray(f).quantize(palette=palette, dither=Image.Dither.NONE)
              for f in frames]
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{uuid.uuid4().hex}.tmp")
    try:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                       duration=int(round(1000 / fps)), loop=0, optimize=True)
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise TrirlError(f"{path}: could not be written ({exc}); fix: check free disk "
                             "space and write permission") from None
        raise


def render(panels: list[tuple[str, object, np.ndarray]], output, *, fps: float = 25.0,
           width: int = 320, height: int = 240, seconds: Optional[float] = None) -> dict:
    """Draw each panel ``(label, env, qpos (T, nq))`` side by side (left to right) into
    the GIF ``output``, ``fps`` frames per second of simulated time (states subsampled
    from the env's control rate). A panel that ends early holds its last frame.
    Returns ``{"frames", "width", "height", "fps"}``."""
    output = Path(output)
    if output.suffix.lower() != ".gif":
        raise TrirlError(f"{output}: only GIF output is supported (Pillow writes it; MP4 "
                         "would need ffmpeg); fix: name the output file *.gif")
    if not output.parent.is_dir():
        raise TrirlError(f"{output}: directory {output.parent} does not exist; fix: create it "
                         "first")
    columns = []
    every = max(1, int(round(1.0 / (panels[0][1].dt * fps))))
    fps_used = 1.0 / (panels[0][1].dt * every)
    for label, env, qpos in panels:
        if seconds is not None:
            qpos = qpos[:max(1, int(round(seconds / env.dt)) + 1)]
        painter = _Painter(scene_of(env), width, height)
        try:
            columns.append([_label(painter.frame(q), label) if label else painter.frame(q)
                            for q in qpos[::every]])
        finally:
            painter.close()
    count = max(len(c) for c in columns)
    frames = [np.concatenate([c[min(i, len(c) - 1)] for c in columns], axis=1)
              for i in range(count)]
    write_gif(output, frames, fps_used)
    return {"frames": count, "width": width * len(columns), "height": height, "fps": fps_used}


def _demo_label(path) -> str:
    from trirl import demos as demos_lib

    return "mocap" if demos_lib.load(path).metadata.get("mocap") else "demos"


def render_target(target, output, *, beside: Optional[str] = "auto", seed_index: int = 0,
                  episode: int = 0, seconds: Optional[float] = 10.0, fps: float = 25.0,
                  width: int = 320, height: int = 240) -> dict:
    """``trirl render``: a run directory (its policy; with ``beside="auto"`` its own
    demonstrations beside it when they keep states; else ``beside`` a demo file, another
    run -- e.g. the expert whose demos it learned from, for Go2 -- or None) or a demo
    file (replayed; ``beside`` a second demo file or a run, or None).
    Returns :func:`render`'s dict plus ``notes``."""
    ensure_gl()
    target = Path(target)
    notes, panels, demo_path = [], [], None
    if target.is_dir():
        env, qpos, fell = policy_states(target, seed_index, seconds=seconds)
        ended = ("then it fell (the episode ended)" if getattr(env, "robot_model", None)
                 else "then the episode ended (a terminal state)")
        notes.append(f"policy: {(len(qpos) - 1) * env.dt:.2f} s" + (f", {ended}" if fell else ""))
        panels.append(("policy", env, qpos))
        own = target / "demos.npz"
        if beside == "auto" and own.is_file():
            from trirl import demos as demos_lib

            if demos_lib.load(own).qpos is not None:
                demo_path = own
        elif beside and beside != "auto":
            demo_path = Path(beside)
    elif target.is_file():
        env, qpos = demo_states(target, episode)
        panels.append((_demo_label(target) if beside and beside != "auto" else "", env, qpos))
        if beside and beside != "auto":
            demo_path = Path(beside)
    else:
        raise TrirlError(f"{target} does not exist; fix: pass a run directory or a demo file")
    if demo_path is not None and demo_path.is_dir():    # another run: its policy
        denv, dq, dfell = policy_states(demo_path, 0, seconds=seconds)
        import json

        kind = json.loads((demo_path / "config.json").read_text()).get("kind", "run")
        panels.append((str(kind), denv, dq))
        notes.append(f"beside it: the policy of {demo_path}" + (", which fell after "
                     f"{(len(dq) - 1) * denv.dt:.2f} s" if dfell else ""))
    elif demo_path is not None:
        denv, dq = demo_states(demo_path, episode)
        panels.append((_demo_label(demo_path), denv, dq))
        notes.append(f"beside it: {demo_path}, episode {episode}")
    info = render(panels, output, fps=fps, width=width, height=height, seconds=seconds)
    info["notes"] = notes
    return info
