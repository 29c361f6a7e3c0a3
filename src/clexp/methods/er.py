"""Experience Replay: every batch of the task is joined by a replay batch of the same size,
drawn uniformly (without replacement within the batch) from a class-balanced buffer of earlier
tasks' training images (`buffer.ReplayBuffer`, `buffer_size` images, 500 by default). The loss
is the mean cross-entropy over the joined batch."""

from __future__ import annotations

import torch

from clexp.methods.base import Method, StateContext, TaskContext
from clexp.methods.buffer import ReplayBuffer, check_buffer_state


class ER(Method):
    """Experience replay with a reservoir of indices, refilled after each task."""

    name = "er"

    def __init__(self, run, model, seed):
        super().__init__(run, model, seed)
        self.buffer = ReplayBuffer(self.option("buffer_size"))
        self.device = next(model.parameters()).device
        self.images: torch.Tensor | None = None
        self.labels: torch.Tensor | None = None

    def start_task(self, context: TaskContext) -> None:
        self.images, self.labels = (self.buffer.tensors(context.train_images, self.device)
                                    if len(self.buffer) else (None, None))

    def sample(self, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        """`count` stored samples (fewer when the buffer is smaller), without replacement."""
        chosen = torch.randperm(len(self.buffer), generator=self.generator)[:count]
        chosen = chosen.to(self.device)
        return self.images[chosen], self.labels[chosen]

    def batch(self, x, y):
        if self.images is None:
            return x, y
        replay_x, replay_y = self.sample(len(y))
        return torch.cat([x, replay_x]), torch.cat([y, replay_y])

    def end_task(self, context: TaskContext) -> None:
        self.buffer.add_task(context.indices, context.train_labels[context.indices],
                             self.generator)

    def state_dict(self) -> dict:
        return dict(super().state_dict(), buffer=self.buffer.state_dict())

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.buffer.load_state_dict(state["buffer"])

    def check_state(self, state: dict, context: StateContext) -> None:
        super().check_state(state, context)
        check_buffer_state(state.get("buffer"), self.buffer.size, context)
