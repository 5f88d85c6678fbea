"""Dependency groups: the channels of a Keras model that can only be removed together.

Tracing follows the model's graph once, in order, with the rule of each layer or ``keras.ops``
operation (:mod:`prunekit.structured.rules`). Every layer that creates channels (Dense units,
Conv filters, RNN units, Embedding columns, attention heads) opens a *space* of atoms, one per
channel; rules pass channel maps along and unite the atoms that must go together (the inputs of
an ``Add`` or ``x + y``, the same position before and after a BatchNormalization...). A union-find
over atoms then yields *units* (one class of united atoms: removing it removes every atom in it)
and *groups* (spaces connected through shared units: e.g. every convolution feeding one residual
stream). Atoms reaching a model output or a layer the graph cannot follow are *fixed*: their
units stay, and the reason is kept for the report. The idea is Torch-Pruning's DepGraph
(Fang et al., "DepGraph: Towards Any Structural Pruning", CVPR 2023), here per channel.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np

from prunekit import _keras_compat, walk
from prunekit.structured import rules


@dataclass
class Coupling:
    """Axis ``axis`` of ``variable`` (a weight of ``layer``) carries ``atoms`` (None: keep)."""

    layer: Any
    variable: Any
    axis: int
    atoms: list
    scored: bool = True


@dataclass
class Space:
    """The channels (or heads) that ``layer`` creates."""

    layer: Any
    kind: str
    atoms: list[int]


@dataclass
class Group:
    """Spaces whose channels are removed together; ``units`` are root atoms, in order."""

    index: int
    spaces: list[Space]
    units: list[int]
    prunable: list[int]
    reasons: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.spaces[0].layer.name

    @property
    def layers(self) -> list[str]:
        return [s.layer.name for s in self.spaces]

    @property
    def granularity(self) -> str:
        return "head" if self.spaces[0].kind == "heads" else "output_channel"


class DependencyGraph:
    """The dependency groups of a Functional or Sequential model.

    Args:
        model: A built Functional or Sequential ``keras.Model``.

    Raises:
        ValueError: For a subclassed model (no graph to follow) or an unbuilt Sequential.

    Example:
        >>> i = keras.Input((4,))
        >>> a = keras.layers.Dense(6, name="a")(i)
        >>> b = keras.layers.Dense(6, name="b")(i)
        >>> out = keras.layers.Dense(2, name="out")(a + b)
        >>> graph = DependencyGraph(keras.Model(i, out))
        >>> [(g.layers, len(g.units), len(g.prunable)) for g in graph.groups]
        [(['a', 'b'], 6, 6), (['out'], 2, 0)]
    """

    def __init__(self, model: keras.Model) -> None:
        self.model = model
        self.nodes = graph_nodes(model)
        self.spaces: list[Space] = []
        self.couplings: list[Coupling] = []
        self.left_whole: list[tuple[str, str]] = []
        self._parent: list[int] = []
        self._fixed: dict[int, str] = {}
        self._layer: Any = None
        self.node: Any = None
        self._trace()
        self.groups = self._make_groups()

    # ------------------------------------------------------------------ context for rules
    def space(self, size: int, kind: str = "channels") -> list[int]:
        atoms = list(range(len(self._parent), len(self._parent) + int(size)))
        self._parent.extend(atoms)
        self.spaces.append(Space(self._layer, kind, atoms))
        return atoms

    def couple(self, variable: Any, axis: int, atoms: list, scored: bool = True) -> None:
        axis = axis % len(variable.shape)
        if len(atoms) != variable.shape[axis]:
            raise ValueError(f"Rule of layer '{self._layer.name}' coupled {len(atoms)} channels "
                             f"with axis {axis} of '{variable.path}' {tuple(variable.shape)}.")
        self.couplings.append(Coupling(self._layer, variable, axis, list(atoms), scored))

    def width(self, tensor: Any) -> int:
        return int(tensor.shape[-1]) if tensor.shape and tensor.shape[-1] else 0

    def fix(self, channel_map: list | None, reason: str) -> None:
        for atom in channel_map or ():
            if atom is not None:
                self._fixed.setdefault(atom, reason)

    def union(self, maps: list) -> list | None:
        width = self.width(self.node.outputs[0])
        full = [m for m, t in zip(maps, self.node.input_tensors)
                if m is not None and len(m) == width and self.width(t) == width]
        if len(full) != len(maps):  # Broadcast or opaque inputs: nothing in them can go.
            for m in maps:
                self.fix(m, f"combined by '{self._layer.name}' with a tensor that cannot shrink")
            if not full:
                return None
        out = list(full[0])
        for other in full[1:]:
            for i, atom in enumerate(other):
                out[i] = self._join(out[i], atom)
        return out

    def _join(self, a: int | None, b: int | None) -> int | None:
        if a is None or b is None:
            self.fix([a, b], f"added in '{self._layer.name}' to a channel that cannot shrink")
            return a if b is None else b
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self._parent[max(ra, rb)] = min(ra, rb)
        return a

    def find(self, atom: int) -> int:
        parent = self._parent
        while parent[atom] != atom:
            parent[atom] = parent[parent[atom]]
            atom = parent[atom]
        return atom

    # ------------------------------------------------------------------ tracing
    def _trace(self) -> None:
        maps: dict[int, Any] = {}
        for node in self.nodes:
            op = node.operation
            if isinstance(op, keras.layers.InputLayer):
                for t in node.outputs:
                    maps[id(t)] = None
                continue
            self._layer, self.node = op, node
            inputs = [maps.get(id(t)) for t in node.input_tensors]
            rule = rules.rule_for(op)
            if type(rule) is rules.LayerRule or isinstance(rule, rules.Opaque):
                self.left_whole.append((op.name, _class_reason(op, rule)))
            out = rule.trace(op, self, inputs)
            for t in node.outputs:
                maps[id(t)] = out if len(node.outputs) == 1 else None
        for t in self.model.outputs:
            self.fix(maps.get(id(t)), "reaches a model output")

    def _make_groups(self) -> list[Group]:
        owner: dict[int, int] = {}  # root -> first space index holding it
        space_parent = list(range(len(self.spaces)))

        def find_space(i: int) -> int:
            while space_parent[i] != i:
                i = space_parent[i]
            return i

        for index, space in enumerate(self.spaces):
            for atom in space.atoms:
                root = self.find(atom)
                if root in owner:
                    a, b = find_space(owner[root]), find_space(index)
                    space_parent[max(a, b)] = min(a, b)
                else:
                    owner[root] = index
        fixed = {}
        for atom, reason in self._fixed.items():
            fixed.setdefault(self.find(atom), reason)
        members: dict[int, list[Space]] = {}
        for index, space in enumerate(self.spaces):
            members.setdefault(find_space(index), []).append(space)
        groups = []
        for spaces in members.values():
            units = list(dict.fromkeys(self.find(a) for s in spaces for a in s.atoms))
            reasons = list(dict.fromkeys(fixed[u] for u in units if u in fixed))
            groups.append(Group(len(groups), spaces, units,
                                [u for u in units if u not in fixed], reasons))
        return groups

    # ------------------------------------------------------------------ queries
    @property
    def atom_count(self) -> int:
        """How many atoms (channels of all spaces) the graph holds."""
        return len(self._parent)

    def roots(self, atoms: list) -> np.ndarray:
        """Root of each atom (-1 for None)."""
        return np.array([-1 if a is None else self.find(a) for a in atoms], dtype=np.int64)

    def kept_positions(self, coupling: Coupling, removed: set[int]) -> np.ndarray:
        """Indices along ``coupling.axis`` that stay when the units ``removed`` go."""
        roots = self.roots(coupling.atoms)
        return np.array([i for i, r in enumerate(roots) if r < 0 or int(r) not in removed],
                        dtype=np.int64)


def _class_reason(op: Any, rule: Any) -> str:
    if isinstance(op, keras.Model):
        return ("a nested model: shrink it on its own, or build the outer model from its "
                "layers")
    if isinstance(rule, rules.Opaque):
        return rule.reason
    kind = "keras.ops operation" if walk.is_operation_node(op) else "layer"
    return (f"no shrink rule for {kind} class {type(op).__name__} (register one with "
            "prunekit.structured.register_shrink_rule)")


def graph_nodes(model: Any) -> list[Any]:
    """The nodes of a Functional or Sequential model, inputs first (topological order).

    Raises:
        ValueError: If the model has no graph (subclassed) or is not built.
    """
    nodes = _keras_compat.graph_nodes(model)
    if nodes is None and isinstance(model, keras.Sequential):
        raise ValueError(
            "Structured pruning needs a built Sequential model: start it with keras.Input "
            f"or call it once. Received: model={model.name!r} (not built)")
    if nodes is None:
        name = getattr(model, "name", model)
        raise ValueError(
            "Structured pruning follows a model's graph: it needs a Functional or Sequential "
            "model. For a subclassed model, build the same network with keras.Model(inputs, "
            "outputs) (or shrink its Functional sub-models one by one). "
            f"Received: model={name!r} of type {type(model).__name__}")
    return nodes
