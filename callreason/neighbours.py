"""A k-nearest-neighbour companion over the fine-tuned embeddings of a model's own training rows.

At a few dozen rows per class the linear head is a smooth summary of each class; the nearest training rows
keep the exceptions (one product phrased three ways). Each level model stores the pooled, L2-normalised
vectors of the rows it was trained on and their labels; at inference a text's ``K_NEIGHBOURS`` most similar
rows vote, weighted by ``exp(cosine / TEMPERATURE)``, and the vote's log-probabilities are blended with the
head's: ``(1 - w) log p_head + w log p_knn`` (``train.knn_weight``). Saved without pickle
(``neighbours.safetensors``); computed in torch on the model's device, batch by batch.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

K_NEIGHBOURS = 10
TEMPERATURE = 0.05  # on cosine similarity: the nearest rows dominate the vote
FLOOR = 1e-3  # share of the vote spread over all classes, so no class's log-probability is -inf
FILE = "neighbours.safetensors"


class NeighbourIndex(torch.nn.Module):
    """The training rows' embeddings ``(n, hidden)``, L2-normalised (float16 on disk), and label ids ``(n,)``."""

    def __init__(self, vectors: torch.Tensor, labels: torch.Tensor, n_classes: int):
        super().__init__()
        self.register_buffer("vectors", F.normalize(vectors.float(), dim=-1))
        self.register_buffer("labels", labels.long())
        self.n_classes = n_classes

    def log_proba(self, pooled: torch.Tensor) -> torch.Tensor:
        """Log-probabilities ``(batch, n_classes)`` of the neighbours' vote for the pooled vectors ``pooled``."""
        query = F.normalize(pooled.float(), dim=-1)
        similarity = query @ self.vectors.T
        top, index = similarity.topk(min(K_NEIGHBOURS, similarity.shape[1]), dim=1)
        votes = torch.softmax(top / TEMPERATURE, dim=1)
        proba = torch.zeros(len(query), self.n_classes, device=query.device).scatter_add_(1, self.labels[index], votes)
        return torch.log((1.0 - FLOOR) * proba + FLOOR / self.n_classes)

    def save(self, folder: Path) -> None:
        save_file({"vectors": self.vectors.half().cpu().contiguous(), "labels": self.labels.cpu().contiguous()},
                  str(Path(folder) / FILE))

    @classmethod
    def load(cls, folder: Path, n_classes: int) -> "NeighbourIndex":
        arrays = load_file(str(Path(folder) / FILE))
        return cls(arrays["vectors"], arrays["labels"], n_classes)


def blend_neighbours(head_logits: torch.Tensor, pooled: torch.Tensor, index: NeighbourIndex | None,
                     weight: float) -> torch.Tensor:
    """``(1 - w) log_softmax(head_logits) + w log p_knn(pooled)``; the head's logits unchanged when ``index``
    is None or ``weight`` is 0."""
    if index is None or weight == 0.0:
        return head_logits
    return (1.0 - weight) * torch.log_softmax(head_logits.float(), dim=1) + weight * index.log_proba(pooled)
