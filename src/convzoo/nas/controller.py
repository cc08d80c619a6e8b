"""NASNet's controller (Zoph et al. 2018, Section 3 and Figure 3) and its policy-gradient training.

A one-layer LSTM with 100 hidden units emits, for the normal cell and then the reduction cell, B blocks of 5
decisions each (hidden state A, hidden state B, operation A, operation B, combination): 2 x 5B softmax heads,
each with its own linear layer, the chosen value fed back as the next step's input through an embedding of that
head. Decision k of block b chooses among 2 + b states, ``len(OP_NAMES)`` operations or the 2 combinations.
Following ENAS (Pham et al. 2018), the logits are ``2.5 * tanh(logits / 5)`` (temperature 5, tanh constant 2.5),
which keeps the early policy from collapsing.

An architecture is a row of ``10 B`` integers (``actions``), decoded by :func:`genotype_of`. Training
(:meth:`Controller.update`): REINFORCE with a moving-average baseline (Williams 1992; the paper's Section 4) or
PPO (Schulman et al. 2017, the paper's choice: the clipped probability ratio over a few epochs of the same
samples), each with an entropy bonus; Adam, whose moments live in buffers of this module, so a checkpoint of the
module holds the whole controller (weights, optimizer, baseline) and a resumed search continues where it stopped.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from convzoo.models.nasnet_genotype import (
    CELL_TYPES,
    COMBINES,
    DECISIONS_PER_BLOCK,
    OP_NAMES,
    CellGenotype,
    Genotype,
    unused_states,
)

TANH_CONSTANT, TEMPERATURE = 2.5, 5.0  # ENAS's controller settings


def decision_sizes(blocks: int) -> list[int]:
    """The number of choices of each of the ``2 x 5B`` decisions, in the order the controller makes them."""
    per_cell = [n for b in range(blocks) for n in (2 + b, 2 + b, len(OP_NAMES), len(OP_NAMES), len(COMBINES))]
    return per_cell * len(CELL_TYPES)


def genotype_of(actions: torch.Tensor | list[int], blocks: int) -> Genotype:
    """The Genotype of one row of ``10 B`` actions; each cell concatenates its unused block outputs (the paper)."""
    values = [int(v) for v in actions]
    if len(values) != 2 * DECISIONS_PER_BLOCK * blocks:
        raise ValueError(f"actions: expected {2 * DECISIONS_PER_BLOCK * blocks} values for B={blocks}, got "
                         f"{len(values)}")
    cells = []
    for c in range(len(CELL_TYPES)):
        cell_blocks, combine = [], []
        for b in range(blocks):
            i, j, op_a, op_b, comb = values[(c * blocks + b) * DECISIONS_PER_BLOCK:][:DECISIONS_PER_BLOCK]
            cell_blocks.append(((OP_NAMES[op_a], i), (OP_NAMES[op_b], j)))
            combine.append(COMBINES[comb])
        cell_blocks = tuple(cell_blocks)
        cells.append(CellGenotype(cell_blocks, unused_states(cell_blocks),
                                  tuple(combine) if "concat" in combine else ()))
    return Genotype(*cells)


def actions_of(genotype: Genotype) -> list[int]:
    """The inverse of :func:`genotype_of` (the concat lists are not encoded: the controller's are implied)."""
    values = []
    for name in CELL_TYPES:
        cell = getattr(genotype, name)
        for k, ((op_a, i), (op_b, j)) in enumerate(cell.blocks):
            values += [i, j, OP_NAMES.index(op_a), OP_NAMES.index(op_b), COMBINES.index(cell.combination(k))]
    return values


def uniform_actions(count: int, blocks: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """LongTensor[count, 10 B] of architectures drawn uniformly from the space (the random-search baseline)."""
    sizes = torch.tensor(decision_sizes(blocks), dtype=torch.float64)
    return (torch.rand(count, len(sizes), generator=generator, dtype=torch.float64) * sizes).long()


def moving_average(baseline: float, reward: float, decay: float, first: bool) -> float:
    """The exponential moving average of rewards (the first reward starts it)."""
    return reward if first else decay * baseline + (1 - decay) * reward


def reinforce_loss(log_prob: torch.Tensor, advantage: torch.Tensor, entropy: torch.Tensor,
                   entropy_weight: float) -> torch.Tensor:
    """-(R - b) log pi(a) - beta H(pi), averaged over the samples (each Tensor[M])."""
    return -(advantage * log_prob).mean() - entropy_weight * entropy.mean()


def ppo_loss(log_prob: torch.Tensor, old_log_prob: torch.Tensor, advantage: torch.Tensor, entropy: torch.Tensor,
             entropy_weight: float, clip: float) -> torch.Tensor:
    """PPO's clipped surrogate: -min(r A, clip(r, 1 - eps, 1 + eps) A) - beta H, r = pi(a) / pi_old(a)."""
    ratio = (log_prob - old_log_prob).exp()
    surrogate = torch.minimum(ratio * advantage, ratio.clamp(1 - clip, 1 + clip) * advantage)
    return -surrogate.mean() - entropy_weight * entropy.mean()


def adam_step(param: torch.Tensor, grad: torch.Tensor, m: torch.Tensor, v: torch.Tensor, step: int, lr: float,
              betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
    """One Adam update of ``param`` in place (Kingma & Ba 2015), its moments ``m``/``v`` updated in place."""
    m.mul_(betas[0]).add_(grad, alpha=1 - betas[0])
    v.mul_(betas[1]).addcmul_(grad, grad, value=1 - betas[1])
    m_hat, v_hat = m / (1 - betas[0] ** step), v / (1 - betas[1] ** step)
    param.sub_(lr * m_hat / (v_hat.sqrt() + eps))


class Controller(nn.Module):
    """The NASNet controller for cells of ``blocks`` blocks (``hidden`` = 100 units, one LSTM layer).

    ``forward(count)`` samples ``count`` architectures: (actions LongTensor[count, 10 B], log-probabilities
    Tensor[count], entropies Tensor[count]) summed over the decisions; ``forward(actions=A)`` scores given actions
    (teacher forcing); ``greedy=True`` takes the most probable choice each time.
    """

    def __init__(self, blocks: int = 5, hidden: int = 100) -> None:
        super().__init__()
        self.blocks, self.sizes = blocks, decision_sizes(blocks)
        self.lstm = nn.LSTMCell(hidden, hidden)
        self.start = nn.Parameter(torch.zeros(1, hidden))
        self.heads = nn.ModuleList(nn.Linear(hidden, n) for n in self.sizes)
        self.embeddings = nn.ModuleList(nn.Embedding(n, hidden) for n in self.sizes)
        for p in self.parameters():
            nn.init.uniform_(p, -0.1, 0.1)  # ENAS's initialization of the controller
        names = [name for name, _ in self.named_parameters()]
        # the optimizer and the baseline are buffers: they travel with the module's weights in a checkpoint
        for i, (_, p) in enumerate(self.named_parameters()):
            self.register_buffer(f"adam_m_{i}", torch.zeros_like(p))
            self.register_buffer(f"adam_v_{i}", torch.zeros_like(p))
        self.register_buffer("adam_steps", torch.zeros((), dtype=torch.long))
        self.register_buffer("baseline", torch.zeros((), dtype=torch.float64))
        self.register_buffer("rewards_seen", torch.zeros((), dtype=torch.long))
        self._names = names

    def forward(self, count: int = 1, actions: torch.Tensor | None = None, generator: torch.Generator | None = None,
                greedy: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if actions is not None:
            count = actions.shape[0]
        inputs = self.start.expand(count, -1)
        state = None
        chosen, log_prob, entropy = [], 0.0, 0.0
        for k, (head, embedding) in enumerate(zip(self.heads, self.embeddings)):
            h, c = self.lstm(inputs, state)
            state = (h, c)
            logits = TANH_CONSTANT * torch.tanh(head(h) / TEMPERATURE)
            log_p = logits.log_softmax(-1)
            if actions is not None:
                choice = actions[:, k]
            elif greedy:
                choice = log_p.argmax(-1)
            else:
                choice = torch.multinomial(log_p.exp().detach(), 1, generator=generator).squeeze(1)
            chosen.append(choice)
            log_prob = log_prob + log_p.gather(1, choice[:, None]).squeeze(1)
            entropy = entropy - (log_p.exp() * log_p).sum(-1)
            inputs = embedding(choice)
        return torch.stack(chosen, 1), log_prob, entropy

    def decision_probabilities(self, actions: torch.Tensor) -> torch.Tensor:
        """Tensor[M, 10 B]: the probability of each decision of ``actions`` given the ones before it."""
        probs = []
        inputs, state = self.start.expand(actions.shape[0], -1), None
        for k, (head, embedding) in enumerate(zip(self.heads, self.embeddings)):
            state = self.lstm(inputs, state)
            p = (TANH_CONSTANT * torch.tanh(head(state[0]) / TEMPERATURE)).softmax(-1)
            probs.append(p.gather(1, actions[:, k:k + 1]).squeeze(1))
            inputs = embedding(actions[:, k])
        return torch.stack(probs, 1)

    def update(self, actions: torch.Tensor, rewards: torch.Tensor, *, method: str = "reinforce", lr: float = 3.5e-3,
               entropy_weight: float = 1e-4, baseline_decay: float = 0.9, ppo_epochs: int = 4,
               ppo_clip: float = 0.2) -> dict[str, float]:
        """One policy-gradient update from sampled ``actions`` LongTensor[M, 10 B] and their ``rewards`` Tensor[M]
        (e.g. dev accuracies); the baseline moves toward the mean reward after the advantages are taken.
        Returns the loss, the entropy and the baseline used."""
        if method not in ("reinforce", "ppo"):
            raise ValueError(f"--policy must be reinforce or ppo, got {method!r}")
        rewards = rewards.detach().double()
        first = int(self.rewards_seen) == 0
        baseline = rewards.mean().item() if first else float(self.baseline)
        advantage = (rewards - baseline).float()
        with torch.enable_grad():
            if method == "reinforce":
                _, log_prob, entropy = self(actions=actions)
                loss = self._step(reinforce_loss(log_prob, advantage, entropy, entropy_weight), lr)
            else:
                with torch.no_grad():
                    _, old_log_prob, _ = self(actions=actions)
                for _ in range(ppo_epochs):
                    _, log_prob, entropy = self(actions=actions)
                    loss = self._step(ppo_loss(log_prob, old_log_prob, advantage, entropy, entropy_weight, ppo_clip),
                                      lr)
        self.baseline.fill_(moving_average(baseline, rewards.mean().item(), baseline_decay, first))
        self.rewards_seen += len(rewards)
        return {"controller_loss": loss, "entropy": entropy.mean().item(), "baseline": baseline}

    def _step(self, loss: torch.Tensor, lr: float) -> float:
        params = list(self.parameters())
        grads = torch.autograd.grad(loss, params, allow_unused=True)  # the last embedding feeds nothing
        self.adam_steps += 1
        step = int(self.adam_steps)
        with torch.no_grad():
            for i, (p, g) in enumerate(zip(params, grads)):
                if g is not None:
                    adam_step(p, g, getattr(self, f"adam_m_{i}"), getattr(self, f"adam_v_{i}"), step, lr)
        value = loss.item()
        if not math.isfinite(value):
            raise ValueError(f"the controller's loss is {value}; try a lower --controller-lr")
        return value
