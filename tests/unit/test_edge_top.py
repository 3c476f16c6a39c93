"""Edges per neuron (issue 25 item 4): ``massif.export.shown_edges``, the rule the page's
edgetop.js follows, on a graph whose answer was worked out by hand, and on a random one against
the rule written a second way."""

from __future__ import annotations

import pytest

from massif.errors import MassifError
from massif.export import numbers, shown_edges
from tests.helpers.edges import HAND_TOP1, HAND_TOP2_ATTACKED, expected_shown, hand_graph, ids
from tests.helpers.synthetic import synthetic_graph


def drawn(graph, mode, k) -> set[str]:
    return {f"{e.source}>{e.target}" for e, shown in zip(graph.edges, shown_edges(graph, mode, k))
            if shown}


def test_the_hand_set_graph_keeps_what_was_worked_out():
    graph, names = hand_graph()
    assert drawn(graph, "attacked", 1) == ids(HAND_TOP1["attacked"], names)
    assert drawn(graph, "benign", 1) == ids(HAND_TOP1["benign"], names)
    assert drawn(graph, "attacked", 2) == ids(HAND_TOP2_ATTACKED, names)
    assert len(drawn(graph, "attacked", None)) == len(graph.edges)


@pytest.mark.parametrize("mode", ["benign", "attacked", "change"])
@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_a_random_graph_follows_the_rule(mode, k):
    graph = synthetic_graph(layers=5, per_layer=8, seed=3)
    assert drawn(graph, mode, k) == expected_shown(graph, mode, k)


def test_the_numbers_say_which_edges_are_shown():
    graph, names = hand_graph()
    n = numbers(graph, edges_per_neuron=1)
    assert n.view.edges_per_neuron == 1
    assert {f"{e['source']}>{e['target']}" for e in n.edges if e["shown"]} == \
        ids(HAND_TOP1["attacked"], names)
    assert numbers(graph).view.edges_per_neuron == 2  # the page's default
    assert all(e["shown"] for e in numbers(graph, edges_per_neuron=None).edges)
    assert "shown" in n.csv()["edges.csv"].splitlines()[0].split(",")
    with pytest.raises(MassifError, match="edges_per_neuron=0"):
        numbers(graph, edges_per_neuron=0)
