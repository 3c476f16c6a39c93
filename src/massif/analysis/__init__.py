"""The analysis: ``profile`` (streaming per-neuron statistics; ``influence``: the edge pass's
backward passes) → ``graph`` (benign, attacked and merged graphs) → ``pipeline`` (the whole
analysis of one request as one call)."""

from .pipeline import analyze, run

__all__ = ["analyze", "run"]
