"""The ``edit`` stage: delete neurons and watch the attack.

* ``editor.Editor``: the public verbs (``evaluate``, ``suggest_defense``, ``export``);
* ``session.Session``: the measuring core (the class's images, the stored attack, a private
  model copy) with a public ``measure`` / ``measure_many`` that the defense search uses;
* ``estimate``: what deleting each neuron would do, to first order (the defense's shortlist);
* ``defense``: the greedy defense and its baselines; ``curves``: deletion curves per ranking
  (``plot``: their charts as SVG and PNG); ``masks``: neuron ids, the export file and
  ``apply_mask``; ``cut``: run a model from a layer on (torch.fx).
"""

from .curves import Curve, CurvePoint, Curves
from .defense import DefenseResult
from .editor import BeforeAfter, Editor, EditResult
from .masks import MaskedModel, apply_mask, parse_mask
from .session import Mask, Session

__all__ = ["BeforeAfter", "Curve", "CurvePoint", "Curves", "DefenseResult", "EditResult",
           "Editor", "Mask", "MaskedModel", "Session", "apply_mask", "parse_mask"]
