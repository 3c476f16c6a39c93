"""Graphs built in code for the server and browser tests (Datasette-style: no model needed),
and ``live_server``, which serves an app over a real socket on 127.0.0.1.

``synthetic_graph`` makes a valid ``massif.Graph`` of any size whose groups, vulnerabilities,
flip strengths and curves follow docs/method.md (a node flips at the first strength where
it has made half of its move), with distinct benign and attacked influences on every edge.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator

from massif.analysis.divergence import divergence_layer
from massif.schemas import (
    AttackInfo,
    BenignRef,
    DatasetRef,
    Divergence,
    Edge,
    Faithfulness,
    Graph,
    Metrics,
    ModelRef,
    Node,
    Params,
    TargetRef,
)

GROUPS = ("suppressed", "shared", "emphasized")


def synthetic_graph(layers: int = 9, per_layer: int = 8, edges: int | None = None,
                    steps: int = 8, seed: int = 0, model_fp: str = "synthetic0000000",
                    benign: tuple[int, str] = (7, "Sneaker"),
                    target: tuple[int, str] = (5, "Sandal")) -> Graph:
    """``layers`` × ``per_layer`` nodes; ``edges`` incoming edges in all (default 4 per node of
    every layer but the first), spread evenly over the nodes."""
    rng = random.Random(seed)
    strengths = [round(3.5 * k / (steps - 1), 4) for k in range(steps)]
    K = steps - 1
    names = [f"layer{i}" for i in range(layers)]
    nodes: list[Node] = []
    for li, layer in enumerate(names):
        channels = rng.sample(range(4 * per_layer), per_layer)
        for j, ch in enumerate(channels):
            group = GROUPS[(j + li) % 3] if j < 3 else rng.choice(GROUPS)
            k_star = rng.randint(1, K)
            start, end = rng.uniform(0.05, 0.3), rng.uniform(0.3, 1.0)
            ramp = [min(1.0, k / k_star * 0.5) if k < k_star else 0.5 + 0.5 * (k - k_star) /
                    max(1, K - k_star) for k in range(steps)]
            ramp[0] = 0.0
            ramp[-1] = 1.0
            if group == "emphasized":
                imp_t = [start + (end - start) * r for r in ramp]
                imp_b = [end * (1 - r) + 0.01 for r in ramp]
            else:
                imp_b = [end - (end - start) * r for r in ramp]
                imp_t = [start * r for r in ramp]
            moving = group != "shared"
            nodes.append(Node(
                id=f"{layer}:{ch}", layer=layer, channel=ch, group=group,
                vulnerability=1 - (k_star - 1) / K if moving else None,
                flip_strength=strengths[k_star] if moving else None,
                importance_benign=imp_b, importance_target=imp_t,
                activation=[rng.uniform(0.5, 3) for _ in range(steps)],
            ))
    by_layer = {lay: [n for n in nodes if n.layer == lay] for lay in names}
    targets = [n for n in nodes if n.layer != names[0]]
    total = 4 * len(targets) if edges is None else edges
    out: list[Edge] = []
    seen: set[tuple[str, str]] = set()
    i = 0
    while len(out) < total:
        node = targets[i % len(targets)]
        i += 1
        prev = by_layer[names[names.index(node.layer) - 1]]
        source = rng.choice(prev)
        if (source.id, node.id) in seen:
            if len(seen) >= sum(len(by_layer[names[names.index(t.layer) - 1]]) for t in targets):
                break
            continue
        seen.add((source.id, node.id))
        out.append(Edge(source=source.id, target=node.id,
                        influence_benign=round(rng.uniform(0.001, 1.0), 4),
                        influence_attacked=round(rng.uniform(0.001, 1.0), 4)))
    asr = [min(1.0, 0.14 * k) for k in range(steps)]
    crossed = [[round(a * (i + 1) / layers, 4) for i in range(layers)] for a in asr]
    return Graph(
        model=ModelRef(name="synthetic", fingerprint=model_fp),
        dataset=DatasetRef(name="synthetic", fingerprint="synthdata0000000"),
        benign=BenignRef(index=benign[0], name=benign[1], n_images=100),
        target=TargetRef(index=target[0], name=target[1]),
        attack=AttackInfo(name="fgm", norm="l2", targeted=True, strengths=strengths),
        params=Params(nodes_per_layer=per_layer, edges_per_node=4),
        layers=names,
        metrics=Metrics(clean_accuracy=0.97, attack_success_rate=asr,
                        divergence_layer=divergence_layer(names, crossed[-1]),
                        divergence=Divergence(crossed=crossed, n_images=97,
                                              n_target_images=100),
                        faithfulness=Faithfulness(masked_emphasized_asr=0.1,
                                                  masked_random_asr=0.7, n_masked=5,
                                                  random_draws=5)),
        nodes=nodes, edges=out,
    )


@contextlib.contextmanager
def live_server(app) -> Iterator[str]:
    """Serve ``app`` with uvicorn on 127.0.0.1 (a free port) in a thread; yields its URL."""
    import threading
    import time

    import uvicorn

    from massif.server import bind

    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
