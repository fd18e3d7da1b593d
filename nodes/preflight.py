"""What each state-consuming node asks of the state it gets, and a dry run of a whole chain.

The checks work on a :class:`Shape` (the schedule, the next scale and the number of candidates),
not on a sampled state, so the same functions serve two purposes:

* each node checks the real state it receives (Sample Scales, the filters, Select Best, Decode,
  Preview Candidates);
* Start State and the all-in-one Sampler walk the submitted graph (ComfyUI's hidden ``PROMPT``
  input) downstream of their state output with :func:`check_downstream` and run the very same
  checks on the shapes the chain will have: a Select Best whose k exceeds the schedule's final
  count, an until_scale past the last scale or a missing filter fails when the graph starts, not
  after minutes of sampling. Widget values that arrive through links are unknown at that point;
  the walk stops there (the node still checks when it runs).

Pure Python (no torch): runs in microseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping

from ttsvar.errors import TTSVarError

from .common import InputError


@dataclass(frozen=True)
class Shape:
    """What the checks need to know about a state: its schedule, progress and batch size."""

    sizes: tuple[int, ...]
    next_scale: int
    count: int

    @classmethod
    def of(cls, state) -> "Shape":
        return cls(tuple(state.schedule.sizes), int(state.next_scale), int(state.num_candidates))

    @property
    def num_scales(self) -> int:
        return len(self.sizes)

    @property
    def finished(self) -> bool:
        return self.next_scale == self.num_scales

    def sampled(self) -> str:
        """How far sampling got, in words ('no scale sampled yet' / 'scales 0..4 of 10 sampled')."""
        if self.next_scale == 0:
            return f"no scale of {self.num_scales} is sampled yet"
        if self.next_scale == 1:
            return f"scale 0 of {self.num_scales} is sampled"
        return f"scales 0..{self.next_scale - 1} of {self.num_scales} are sampled"


def _candidates(n: int) -> str:
    return f"{n} candidate" + ("" if n == 1 else "s")


def sample_until(shape: Shape, until_scale: int) -> int:
    """Sample Scales: the exclusive end scale for ``until_scale`` (0 = through the next scale where
    the schedule drops candidates, -1 = through the last), after checking it can be reached."""
    total = shape.num_scales
    if shape.finished:
        raise InputError("state", f"all {total} scales are already sampled; connect this state to Select Best or Decode instead.")
    if until_scale == -1:
        until = total
    elif until_scale == 0:
        drops = [k for k in range(max(shape.next_scale, 1), total) if shape.sizes[k] < shape.sizes[k - 1]]
        until = drops[0] + 1 if drops else total
    else:
        until = until_scale
    if not shape.next_scale < until <= total:
        raise InputError(
            "until_scale",
            f"is {until_scale}, but {shape.sampled()} (next is scale {shape.next_scale}); choose a value in "
            f"{shape.next_scale + 1}..{total}, 0 for the next filter point, or -1 for all.",
        )
    k = shape.next_scale
    if k > 0 and shape.count != shape.sizes[k - 1]:
        raise InputError(
            "state",
            f"has {_candidates(shape.count)} but the batch schedule keeps {shape.sizes[k - 1]} after scale {k - 1}: "
            f"put a filter (TTS-VAR Cluster Filter or Reward Resample) before this node.",
        )
    for k in range(max(shape.next_scale, 1), until - 1):
        if shape.sizes[k] < shape.sizes[k - 1]:
            raise InputError(
                "until_scale",
                f"is {until_scale}: that samples past scale {k}, after which the batch schedule keeps "
                f"{shape.sizes[k]} of {shape.sizes[k - 1]} candidates. Stop there (until_scale = {k + 1}, or 0) "
                "and put a filter there (TTS-VAR Cluster Filter or Reward Resample).",
            )
    return until


def filter_keep(shape: Shape, keep: int) -> int:
    """Cluster Filter / Reward Resample: how many candidates continue (``keep`` 0 = the schedule's
    count after the last sampled scale)."""
    if shape.next_scale == 0:
        raise InputError("state", "no scale has been sampled yet; put a TTS-VAR Sample Scales node before this filter.")
    n = shape.sizes[shape.next_scale - 1] if keep == 0 else keep
    if not 1 <= n <= shape.count:
        what = f"is {keep}" if keep else f"is 0, i.e. the schedule's {n} after scale {shape.next_scale - 1},"
        raise InputError("keep", f"{what} but the state has only {_candidates(shape.count)}; choose 1..{shape.count} (0 = the schedule's count).")
    return n


def select_k(shape: Shape, k: int) -> int:
    """Select Best: the number kept, once every scale is sampled."""
    if not shape.finished:
        raise InputError("state", f"{shape.sampled()}; add TTS-VAR Sample Scales with until_scale = -1 first.")
    if not 1 <= k <= shape.count:
        raise InputError(
            "k",
            f"is {k} but only {_candidates(shape.count)} reach this node (the batch schedule ends with "
            f"{shape.sizes[-1]}); set k to at most {shape.count}, or raise N in the schedule.",
        )
    return k


def decodable(shape: Shape) -> None:
    """Decode: every scale sampled."""
    if not shape.finished:
        raise InputError(
            "state",
            f"{shape.sampled()}; add TTS-VAR Sample Scales with until_scale = -1, or use TTS-VAR Preview "
            "Candidates for intermediate images.",
        )


def previewable(shape: Shape) -> None:
    """Preview Candidates: at least one scale sampled."""
    if shape.next_scale == 0:
        raise InputError("state", "no scale has been sampled yet; put a TTS-VAR Sample Scales node before the preview.")


# ---------------------------------------------------------------------------- the dry run
def _literal(value: Any) -> int | None:
    """A widget's value, or None when it comes through a link (unknown before the run)."""
    return None if isinstance(value, list) else int(value)


def _step_sample(shape: Shape, inputs: Mapping) -> Shape | None:
    until = _literal(inputs.get("until_scale", 0))
    return None if until is None else replace(shape, next_scale=sample_until(shape, until))


def _step_filter(shape: Shape, inputs: Mapping) -> Shape | None:
    keep = _literal(inputs.get("keep", 0))
    return None if keep is None else replace(shape, count=filter_keep(shape, keep))


def _step_select(shape: Shape, inputs: Mapping) -> Shape | None:
    k = _literal(inputs.get("k", 1))
    return None if k is None else replace(shape, count=select_k(shape, k))


def _step_end(check: Callable[[Shape], None]) -> Callable[[Shape, Mapping], None]:
    def step(shape: Shape, inputs: Mapping) -> None:
        check(shape)
        return None

    return step


#: class_type -> what the node does to the shape of its ``state`` input (None: nothing follows).
STEPS: dict[str, Callable[[Shape, Mapping], Shape | None]] = {
    "TTSVAR_SampleScales": _step_sample,
    "TTSVAR_ClusterFilter": _step_filter,
    "TTSVAR_RewardResample": _step_filter,
    "TTSVAR_SelectBest": _step_select,
    "TTSVAR_Decode": _step_end(decodable),
    "TTSVAR_PreviewCandidates": _step_end(previewable),
}
#: The state output slot of every node that returns a state.
STATE_OUTPUT = {"TTSVAR_StartState": 0, "TTSVAR_SampleScales": 0, "TTSVAR_ClusterFilter": 0, "TTSVAR_RewardResample": 0,
                "TTSVAR_SelectBest": 0, "TTSVAR_Sampler": 1}


class DownstreamError(TTSVarError):
    """A node further down the graph would fail with the state this node starts."""


def _will_run(prompt: Mapping[str, Mapping], is_output: Callable[[str], bool]) -> set[str]:
    """Nodes ComfyUI executes: the output nodes and everything they depend on."""
    todo = [nid for nid, node in prompt.items() if is_output(node.get("class_type", ""))]
    seen: set[str] = set()
    while todo:
        nid = str(todo.pop())
        if nid in seen or nid not in prompt:
            continue
        seen.add(nid)
        todo.extend(str(v[0]) for v in prompt[nid].get("inputs", {}).values() if isinstance(v, list) and v)
    return seen


def _title(node: Mapping) -> str:
    """The node's title in the editor (API prompts carry it in _meta), else its display name."""
    from .pipeline import NODES

    ct = node["class_type"]
    title = node.get("_meta", {}).get("title")
    return title if title and title != ct else NODES.get(ct, (None, ct))[1]


def check_downstream(prompt: Mapping[str, Mapping] | None, node_id: Any, shape: Shape,
                     is_output: Callable[[str], bool]) -> None:
    """Run every check of the state chain below ``node_id`` on the shapes it will have.

    ``prompt`` is the submitted API-format graph (None or empty: nothing to check). Only nodes that
    will run (they feed an output node) are checked. Raises :class:`DownstreamError` naming the
    node and its input.
    """
    if not prompt or node_id is None:
        return
    will_run = _will_run(prompt, is_output)
    start = prompt.get(str(node_id), {}).get("class_type")
    todo = [(str(node_id), STATE_OUTPUT.get(start, 0), shape)]
    while todo:
        src, slot, current = todo.pop()
        for nid, node in prompt.items():
            link = node.get("inputs", {}).get("state")
            step = STEPS.get(node.get("class_type"))
            if step is None or nid not in will_run or not (isinstance(link, list) and len(link) == 2):
                continue
            if str(link[0]) != src or int(link[1]) != slot:
                continue
            try:
                after = step(current, node["inputs"])
            except InputError as exc:
                title = _title(node)
                raise DownstreamError(
                    f"checked before sampling: {title} (node {nid}), input '{exc.input_name}': {exc.message}"
                ) from None
            if after is not None:
                todo.append((nid, 0, after))
