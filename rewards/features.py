"""Base features of a transition, declared as data so any reader can compute them.

A feature-based reward (paper Sec. 5.1, App. B) reads a few named quantities of a
transition -- e.g. the particle position in Point Maze, the forward velocity and the
action cost of a walker -- instead of the whole observation. trirl declares each env's
features as a *spec*: a list of terms, each one of

* ``{"name": ..., "term": "obs", "index": i}``: observation value ``i``;
* ``{"name": ..., "term": "next_obs", "index": i}``: next-observation value ``i``;
* ``{"name": ..., "term": "action", "index": i}``: action value ``i``;
* ``{"name": ..., "term": "action_sq_sum"}``: ``sum_i a_i^2`` (an action cost);
* ``{"name": ..., "term": "obs_distance", "index": [i, ...], "to": [j, ...]}``: the
  Euclidean distance ``||s[index] - s[to]||`` between two equally long groups of
  observation values (e.g. position and goal); ``next_obs_distance`` the same on s'.

The same spec is written into a ``.reward`` file's header, and :func:`evaluate` runs
under NumPy, JAX (the learner) or, node by node, ONNX -- so a reward file carries no
code and the features it reads cannot differ between trainer and reader.
"""

from __future__ import annotations

from typing import Any, Sequence

# The input each term reads ("obs", "next_obs" or "action"): the evaluators pick their
# array by it, and a reward reads an action / s' exactly when one of its terms does.
SOURCES = {"obs": "obs", "next_obs": "next_obs", "action": "action", "action_sq_sum": "action",
           "obs_distance": "obs", "next_obs_distance": "next_obs"}
TERMS = tuple(SOURCES)
INDEXED = ("obs", "next_obs", "action")
DISTANCES = ("obs_distance", "next_obs_distance")


def reads(spec: Sequence[dict[str, Any]], source: str) -> bool:
    """Whether the features of ``spec`` read ``source`` ("obs", "next_obs", "action")."""
    return any(SOURCES[term["term"]] == source for term in spec)


def spec_of(terms: Sequence[tuple]) -> list[dict[str, Any]]:
    """``(("particle_x", "obs", 0), ("ctrl", "action_sq_sum"),
    ("goal_distance", "next_obs_distance", (0, 1), (2, 3)))`` -> the JSON spec."""
    out = []
    for term in terms:
        name, kind, *index = term
        entry = {"name": str(name), "term": str(kind)}
        if kind in DISTANCES:
            entry["index"], entry["to"] = [int(i) for i in index[0]], [int(i) for i in index[1]]
        elif index:
            entry["index"] = int(index[0])
        out.append(entry)
    return out


def _index_ok(value: Any, size: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < size


def spec_problem(spec: Any, observation_size: int, action_size: int) -> str | None:
    """Why ``spec`` cannot be evaluated for these sizes, or ``None`` when it can."""
    if not isinstance(spec, list) or not spec:
        return "must be a non-empty list of feature terms"
    for i, term in enumerate(spec):
        if not isinstance(term, dict) or not isinstance(term.get("name"), str):
            return f"entry {i} is not an object with a string 'name'"
        kind = term.get("term")
        if kind not in TERMS:
            return f"entry {i} ({term['name']}) has term {kind!r}, not one of {', '.join(TERMS)}"
        if kind in INDEXED:
            size = action_size if kind == "action" else observation_size
            if not _index_ok(term.get("index"), size):
                return (f"entry {i} ({term['name']}) needs an integer 'index' in "
                        f"[0, {size}) for term {kind!r}")
        if kind in DISTANCES:
            index, to = term.get("index"), term.get("to")
            if not (isinstance(index, list) and isinstance(to, list) and index
                    and len(index) == len(to)
                    and all(_index_ok(j, observation_size) for j in index + to)):
                return (f"entry {i} ({term['name']}) needs 'index' and 'to': equally long, "
                        f"non-empty lists of integers in [0, {observation_size}) for term "
                        f"{kind!r}")
    return None


def evaluate(xp, spec: list[dict[str, Any]], obs, action, next_obs):
    """Features ``(..., len(spec))`` of transitions, in the array module ``xp``.

    ``action`` must already be the executed (clipped) action."""
    arrays = {"obs": obs, "next_obs": next_obs, "action": action}
    columns = []
    for term in spec:
        kind = term["term"]
        source = arrays[SOURCES[kind]]
        if kind == "action_sq_sum":
            columns.append(xp.sum(source * source, axis=-1))
        elif kind in DISTANCES:
            d = source[..., list(term["index"])] - source[..., list(term["to"])]
            columns.append(xp.sqrt(xp.sum(d * d, axis=-1)))
        else:
            columns.append(source[..., term["index"]])
    return xp.stack(columns, axis=-1)
