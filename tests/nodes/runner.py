"""A small in-process executor for API-format workflows, with ComfyUI's caching semantics.

Like ComfyUI's classic cache, a node's output is reused when its class, its widget values and the
signatures of all its ancestors are unchanged; the *same* Python objects are then handed to every
consumer and to later runs (so a node that mutated its inputs would be caught by the re-execution
tests). Built-in output nodes (PreviewImage, SaveImage) are stubbed: they record their images.
Hidden inputs are filled as ComfyUI does: PROMPT = the submitted graph, UNIQUE_ID = the node's id
(which, as in ComfyUI, then becomes part of the node's cache signature).
"""

from __future__ import annotations

import json


class Runner:
    def __init__(self, mappings: dict):
        self.mappings = mappings
        self.cache: dict[str, tuple[str, tuple]] = {}  # node id -> (signature, outputs)
        self.instances: dict[tuple[str, str], object] = {}
        self.executed: list[str] = []
        self.ui: dict[str, dict] = {}
        self.images: dict[str, object] = {}

    def _signature(self, prompt, nid, memo):
        if nid in memo:
            return memo[nid]
        node = prompt[nid]
        parts = [node["class_type"]]
        if "UNIQUE_ID" in self._hidden(node["class_type"]).values():
            parts.append(nid)
        for name in sorted(node["inputs"]):
            v = node["inputs"][name]
            if isinstance(v, list):
                parts.append((name, self._signature(prompt, str(v[0]), memo), v[1]))
            else:
                parts.append((name, json.dumps(v)))
        memo[nid] = json.dumps(parts)
        return memo[nid]

    def _hidden(self, class_type: str) -> dict:
        cls = self.mappings.get(class_type)
        return cls.INPUT_TYPES().get("hidden", {}) if cls is not None else {}

    def _order(self, prompt):
        done, order = set(), []

        def visit(nid, stack=()):
            if nid in done:
                return
            if nid in stack:
                raise ValueError(f"cycle at node {nid}")
            for v in prompt[nid]["inputs"].values():
                if isinstance(v, list):
                    visit(str(v[0]), stack + (nid,))
            done.add(nid)
            order.append(nid)

        for nid in sorted(prompt, key=int):
            visit(nid)
        return order

    def run(self, prompt: dict) -> dict:
        """Execute (or reuse) every node; returns {node id: outputs tuple}."""
        self.executed = []
        memo: dict = {}
        results = {}
        for nid in self._order(prompt):
            node = prompt[nid]
            ct = node["class_type"]
            sig = self._signature(prompt, nid, memo)
            cached = self.cache.get(nid)
            if cached is not None and cached[0] == sig:
                results[nid] = cached[1]
                continue
            kwargs = {}
            for name, v in node["inputs"].items():
                kwargs[name] = results[str(v[0])][v[1]] if isinstance(v, list) else v
            for name, kind in self._hidden(ct).items():
                kwargs[name] = {"PROMPT": prompt, "UNIQUE_ID": nid}[kind]
            self.executed.append(nid)
            if ct in ("PreviewImage", "SaveImage"):
                self.images[nid] = kwargs["images"]
                out = ()
            else:
                cls = self.mappings[ct]
                inst = self.instances.setdefault((nid, ct), cls())
                ret = getattr(inst, cls.FUNCTION)(**kwargs)
                if isinstance(ret, dict):
                    if "ui" in ret:
                        self.ui[nid] = ret["ui"]
                    ret = ret.get("result", ())
                out = tuple(ret)
                assert len(out) == len(cls.RETURN_TYPES), f"{ct} returned {len(out)} values for {cls.RETURN_TYPES}"
            self.cache[nid] = (sig, out)
            results[nid] = out
        return results
