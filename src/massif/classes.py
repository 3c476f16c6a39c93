"""Classes: how a dataset's classes map to the model's outputs (by name, by an ImageNet-style
class index file, or one to one), and which images belong to a class.

``AnalysisRequest.resolve`` and the server's class lists start here, so a class name means the
same everywhere.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

from .errors import MassifError, is_index, short

if TYPE_CHECKING:
    from .datasets import Dataset
    from .models import Model


def read_class_index(path: str) -> dict[str, int]:
    """An ImageNet-style class index file → ``{wordnet id: model output}``."""
    if not isinstance(path, (str, os.PathLike)):  # ``open(3)`` would read file descriptor 3
        raise MassifError(f"class_index must be a file path, not {type(path).__name__}")
    try:
        with open(path, encoding="utf-8") as f:
            table = json.load(f)
    except OSError as e:
        raise MassifError(f"cannot read class index {path}: {e.strerror}") from None
    except (ValueError, RecursionError) as e:
        raise MassifError(f"class index {path} is not JSON: {str(e)[:120]}") from None
    if not isinstance(table, dict) or not table:
        raise MassifError(f"class index {path} must be a JSON object like "
                          '{"0": ["n01440764", "tench"], ...}')
    out = {}
    for k, v in table.items():
        if not is_index(k) or not isinstance(v, list) or not v or not isinstance(v[0], str):
            raise MassifError(f"class index {path}: entry {short(k, 20)} must be "
                              '"<output index>": ["<wordnet id>", "<name>"]')
        out[v[0]] = int(k)
    return out


def class_space(model: Model, dataset: Dataset,
                class_index: str | None = None) -> tuple[list[str], list[int]]:
    """The model's class names and, for each dataset label, the model output it corresponds to.

    Dataset classes are matched to model classes by name (case and punctuation ignored), by an
    ImageNet-style class index file (for folders named by WordNet id), or one to one when the
    model's classes have no names and the counts agree. A class index file is read and checked
    whenever it is given.
    """
    from .datasets import resolve_class

    wnid = read_class_index(class_index) if class_index else {}
    data_names = dataset.class_names
    names = model.class_names
    generic = names is None or names == [str(i) for i in range(len(names))]
    if generic:
        n_out = len(names) if names else len(data_names)
        if n_out != len(data_names):
            raise MassifError(f"the model has {n_out} outputs but the dataset "
                              f"{len(data_names)} classes; they must match one to one")
        return list(data_names), list(range(len(data_names)))
    n_out = len(names)
    bad = [w for w, i in wnid.items() if not 0 <= i < n_out]
    if bad:
        raise MassifError(f"class index {class_index} names outputs the model does not have "
                          f"(it has {n_out})")
    mapping = []
    for d in data_names:
        if d in wnid:
            mapping.append(wnid[d])
            continue
        try:
            mapping.append(resolve_class(d, names))
        except MassifError:
            raise MassifError(
                f"dataset class {short(d)} matches none of the model's classes; name the "
                "folders after the model's classes or pass an ImageNet-style class index file "
                "(--class-index)") from None
    return list(names), mapping


def resolve_class_of(name: str | int, names: list[str], dataset: Dataset,
                     label_map: list[int]) -> int:
    """A class given by model class name or index, or by dataset folder name."""
    from .datasets import resolve_class

    try:
        return resolve_class(name, names)
    except MassifError:
        if isinstance(name, str) and name in dataset.class_names:
            return label_map[dataset.class_names.index(name)]
        raise


def class_images(dataset: Dataset, label_map: list[int], output: int) -> list[int]:
    """Indices of the dataset's images whose class is model output ``output``."""
    import torch

    labels = [i for i, o in enumerate(label_map) if o == output]
    return torch.nonzero(torch.isin(dataset.labels, torch.tensor(labels))).flatten().tolist()
