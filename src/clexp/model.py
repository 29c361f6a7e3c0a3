"""The study's network: MLP(784 -> 120 -> 84 -> 10) with optional normalisation and dropout
(784 -> 120 -> 84 -> 2 in the domain-incremental scenario). The two hidden widths are a setting
(`hidden`, e.g. [400, 400] for van de Ven & Tolias' split-MNIST network)."""

from __future__ import annotations

import torch
from torch import nn

from clexp.config import DEFAULT_HIDDEN  # a run whose settings hold no `hidden` has them
from clexp.scenario import output_count

NORMS = ("none", "batch", "layer")


def _norm_layer(kind: str, width: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm1d(width)
    if kind == "layer":
        return nn.LayerNorm(width)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm must be one of {', '.join(NORMS)}, got {kind!r}")


class MLP(nn.Module):
    """Two hidden ReLU layers; forward returns `(logits, (h1, h2))`.

    Normalisation (BatchNorm1d or LayerNorm) sits after each hidden linear layer, before the
    ReLU; dropout follows each hidden activation. `h1`, `h2` are the post-ReLU activations
    before dropout, so the L1 penalty and the sparsity see what the layer computed.
    """

    def __init__(
        self,
        in_features: int = 784,
        hidden: tuple[int, int] = DEFAULT_HIDDEN,
        num_classes: int = 10,
        norm: str = "none",
        dropout: float = 0.0,
    ):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden[0])
        self.norm1 = _norm_layer(norm, hidden[0])
        self.fc2 = nn.Linear(hidden[0], hidden[1])
        self.norm2 = _norm_layer(norm, hidden[1])
        self.fc3 = nn.Linear(hidden[1], num_classes)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        h1 = torch.relu(self.norm1(self.fc1(x)))
        h2 = torch.relu(self.norm2(self.fc2(self.dropout(h1))))
        logits = self.fc3(self.dropout(h2))
        return logits, (h1, h2)

    def weight_layers(self) -> dict[str, nn.Linear]:
        """The linear layers by name, in forward order."""
        return {"fc1": self.fc1, "fc2": self.fc2, "fc3": self.fc3}


def hidden_widths(run: dict) -> tuple[int, int]:
    """The widths of the two hidden layers of a run's network (`hidden`, default 120, 84)."""
    return tuple(int(width) for width in run.get("hidden") or DEFAULT_HIDDEN)


def build_model(run: dict) -> MLP:
    """The MLP an experiment's settings describe: its hidden widths (`hidden_widths`), two
    outputs in domain-incremental runs (`clexp.scenario.output_count`)."""
    return MLP(hidden=hidden_widths(run), num_classes=output_count(run), norm=run["norm"],
               dropout=run["dropout"])
