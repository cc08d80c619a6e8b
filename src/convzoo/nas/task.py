"""The architecture search as a task of the one engine (``convzoo search``): ENAS's alternating training
(Pham et al. 2018, Section 2.2) mapped onto ``train/fit.py``.

- Each training step (``train_step``) samples one architecture (the controller's policy, or uniformly for
  ``--strategy random``) and trains the shared weights of the :class:`~convzoo.nas.supernet.Supernet` on the
  batch: the engine's optimizer, schedule, clipping, budget, checkpoints, Ctrl-C and non-finite checks apply.
- Each dev evaluation (``evaluate(split="dev")``, every ``--eval-every`` epochs) is the controller's phase:
  ``--controller-steps`` times, ``--samples`` architectures are sampled and rewarded with their accuracy on a
  ``--reward-batch`` of dev images on the shared weights, and the controller takes a REINFORCE or PPO step (the
  random baseline samples and scores the same number uniformly). The best architectures (re-scored on a fixed dev
  subset) are kept; the metrics are the sampled rewards' mean/max/std, the policy's entropy, the baseline and
  ``accuracy``, the best genotype's shared-weight accuracy on that subset (the engine's ``best`` checkpoint).
- Everything the search has learned is in the model module (supernet, controller with its Adam moments and
  baseline, the top genotypes, the step counters): the engine's checkpoint holds it, so a resume continues.

With ``out`` (the last dev evaluation and the test one) the task writes ``genotypes.json`` (the top genotypes
with their scores), ``best_genotype.json`` (for ``convzoo train --genotype``), ``cell_normal.png``,
``cell_reduction.png`` and ``train_command.txt``: the command that trains the found cell from scratch.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from convzoo.data import collate_batch
from convzoo.models.nasnet_genotype import Genotype
from convzoo.nas.controller import Controller, genotype_of, uniform_actions
from convzoo.nas.supernet import Supernet
from convzoo.options import ClassificationOptions, SearchOptions
from convzoo.registry import register_model
from convzoo.tasks.base import ONE_PROCESS, Reducer, TaskData, unwrap_model
from convzoo.tasks.classification import ClassificationTask


class SearchModel(nn.Module):
    """The whole state of a search: ``supernet``, ``controller`` and buffers (``top_actions`` LongTensor[K, 10 B]
    best first, ``top_scores`` Tensor[K], -1 where empty; ``train_steps``; ``phases``; ``steps_at_phase``).
    ``forward(x, genotype=None)`` runs the supernet with ``genotype`` (default: the best found so far)."""

    def __init__(self, num_classes: int, in_chans: int, cells: int, filters: int, blocks: int, top: int) -> None:
        super().__init__()
        self.blocks = blocks
        self.supernet = Supernet(num_classes, in_chans, cells, filters, blocks)
        self.controller = Controller(blocks)
        self.register_buffer("top_actions", torch.zeros(top, len(self.controller.sizes), dtype=torch.long))
        self.register_buffer("top_scores", torch.full((top,), -1.0, dtype=torch.float64))
        for name in ("train_steps", "phases", "steps_at_phase"):
            self.register_buffer(name, torch.zeros((), dtype=torch.long))

    def best(self) -> Genotype:
        """The best genotype found (before any scoring: the controller's most probable one)."""
        if self.top_scores[0] >= 0:
            return genotype_of(self.top_actions[0], self.blocks)
        with torch.no_grad():
            return genotype_of(self.controller(1, greedy=True)[0][0], self.blocks)

    def forward(self, x: torch.Tensor, genotype: Genotype | None = None) -> torch.Tensor:
        return self.supernet(x, genotype or self.best())


class SearchTask(ClassificationTask):
    """NASNet's cell search on the classification data ``data`` (see the module's docstring)."""

    name = "search"
    score = "accuracy"
    # ENAS's shared-weight training: SGD (Nesterov) lr 0.05 on a cosine schedule, weight decay 1e-4, clipping 5
    defaults = {"batch_size": 64, "optimizer": "sgd", "lr": 0.05, "weight_decay": 1e-4, "grad_clip": 5.0,
                "epochs": 30}
    find_unused_parameters = True  # a step trains only the sampled operations

    def __init__(self, model: str, data: str, options: SearchOptions | None = None, *, seed: int = 0,
                 image_size: int | None = None, **_common) -> None:
        super().__init__(model, data, ClassificationOptions(), image_size=image_size)
        self.search, self.seed = options or SearchOptions(), seed

    def load_data(self, data: str | None = None) -> TaskData:
        splits = super().load_data(data)
        train = splits.train
        if self.search.subset:
            train = Subset(train, range(min(self.search.subset, len(train))))
        s = self.search
        splits.info["search"] = {"strategy": s.strategy, "policy": s.policy, "cells": s.cells, "filters": s.filters,
                                 "blocks": s.blocks, "top": s.top, "data": data or self.data_spec,
                                 "image_size": self.image_size}
        return TaskData(train, splits.dev, splits.test, splits.info, splits.notes)

    def build_model(self, info: dict, initialize: bool = True) -> nn.Module:
        s = info["search"]
        return nasnet_search(info["num_classes"], info["input_size"][0], s["cells"], s["filters"], s["blocks"],
                             s["top"])

    def _generator(self, *key: int) -> torch.Generator:
        return torch.Generator().manual_seed(hash((self.seed, *key)) % 2**62)

    def sample(self, model: SearchModel, count: int, generator: torch.Generator) -> torch.Tensor:
        """LongTensor[count, 10 B]: the controller's samples, or uniform ones for ``--strategy random``."""
        if self.search.strategy == "random":
            return uniform_actions(count, model.blocks, generator)
        with torch.no_grad():
            return model.controller(count, generator=generator)[0]

    def train_step(self, model: nn.Module, batch) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        inner = unwrap_model(model)
        actions = self.sample(inner, 1, self._generator(0, int(inner.train_steps)))
        inner.train_steps += 1
        images, labels = batch
        logits = model(images, genotype_of(actions[0], inner.blocks))
        loss = F.cross_entropy(logits, labels)
        with torch.no_grad():
            correct = (logits.argmax(1) == labels).sum()
        return {"loss": loss}, {"correct": correct, "count": torch.tensor(labels.shape[0], device=labels.device)}

    @torch.no_grad()
    def _accuracy(self, model: SearchModel, dataset: Dataset, indices: list[int], genotype: Genotype,
                  device: torch.device, reducer: Reducer) -> tuple[float, float]:
        """(accuracy, mean cross-entropy) of ``genotype`` on the shared weights over ``indices`` of ``dataset``
        (this process's share of them; summed over processes)."""
        sums = torch.zeros(3, dtype=torch.float64, device=device)
        mine = indices[reducer.rank::reducer.world_size]
        for batch in DataLoader(dataset, batch_size=256, sampler=mine, collate_fn=collate_batch):
            images, labels = self.to_device(batch, device)
            logits = model(images, genotype).float()
            sums += torch.stack([(logits.argmax(1) == labels).sum().double(),
                                 F.cross_entropy(logits, labels, reduction="sum").double(),
                                 torch.tensor(float(len(labels)), dtype=torch.float64, device=device)])
        correct, loss, count = reducer.sum(sums).tolist()
        return correct / max(count, 1.0), loss / max(count, 1.0)

    def evaluate(self, model: nn.Module, dataset: Dataset, device: torch.device, reducer: Reducer = ONE_PROCESS,
                 out: Path | None = None, split: str = "test", info: dict | None = None) -> dict[str, float]:
        """In the search (split "dev" after new training steps): the controller's phase, then the best genotype's
        dev accuracy; otherwise the best genotype's ``accuracy`` and ``loss`` on all of ``dataset``."""
        model = unwrap_model(model)
        metrics: dict[str, float] = {}
        if split == "dev" and int(model.train_steps) > int(model.steps_at_phase):
            metrics = self._phase(model, dataset, device, reducer)
            accuracy = float(model.top_scores[0])
            metrics.update(accuracy=accuracy, count=float(min(len(dataset), 2 * self.search.reward_batch)))
        else:
            indices = reducer.shard(dataset)
            everything = list(range(len(dataset)))
            accuracy, loss = self._accuracy(model, dataset, everything, model.best(), device, reducer)
            metrics = {"accuracy": accuracy, "loss": loss, "count": float(len(indices) * reducer.world_size)}
        if out is not None and reducer.rank == 0:
            self.write_results(model, Path(out), info or {})
        return metrics

    def _phase(self, model: SearchModel, dataset: Dataset, device: torch.device, reducer: Reducer) -> dict:
        s, phase = self.search, int(model.phases)
        generator = self._generator(1, phase)
        rewards, entropies, baselines, sampled = [], [], [], []
        for _ in range(s.controller_steps):
            actions = self.sample(model, s.samples, generator)
            batch = torch.randperm(len(dataset), generator=generator)[:s.reward_batch].tolist()
            reward = torch.tensor([self._accuracy(model, dataset, batch, genotype_of(a, model.blocks), device,
                                                  reducer)[0] for a in actions], dtype=torch.float64)
            if s.strategy == "controller":
                stats = model.controller.update(actions, reward, method=s.policy, lr=s.controller_lr,
                                                entropy_weight=s.entropy_weight, baseline_decay=s.baseline_decay,
                                                ppo_epochs=s.ppo_epochs, ppo_clip=s.ppo_clip)
                entropies.append(stats["entropy"])
                baselines.append(stats["baseline"])
            rewards.append(reward)
            sampled += list(zip(reward.tolist(), actions.tolist()))
        rewards = torch.cat(rewards)
        # the best candidates (this phase's best samples, the kept ones, the policy's mode) re-scored on one fixed
        # dev subset with the current weights, so that the kept scores are comparable
        candidates = [a for _, a in sorted(sampled, key=lambda item: -item[0])[:s.top]]
        candidates += [a for a, score in zip(model.top_actions.tolist(), model.top_scores.tolist()) if score >= 0]
        if s.strategy == "controller":
            with torch.no_grad():
                candidates.append(model.controller(1, greedy=True)[0][0].tolist())
        unique = list({tuple(a): a for a in candidates}.values())
        fixed = list(range(min(len(dataset), 2 * s.reward_batch)))
        scored = sorted(((self._accuracy(model, dataset, fixed, genotype_of(a, model.blocks), device, reducer)[0], a)
                         for a in unique), key=lambda item: -item[0])[:s.top]
        for i, (score, actions) in enumerate(scored):
            model.top_scores[i], model.top_actions[i] = score, torch.tensor(actions)
        model.phases += 1
        model.steps_at_phase.copy_(model.train_steps)
        metrics = {"reward_mean": rewards.mean().item(), "reward_max": rewards.max().item(),
                   "reward_std": rewards.std().item() if len(rewards) > 1 else 0.0}
        if entropies:
            metrics.update(entropy=sum(entropies) / len(entropies), baseline=baselines[-1])
        return metrics

    def headline(self, metrics: dict[str, float]) -> dict[str, float]:
        keep = ("loss", "accuracy", "dev:reward_mean", "dev:entropy", "dev:accuracy", "test:accuracy")
        return {k: v for k, v in metrics.items() if k in keep}

    def write_results(self, model: SearchModel, out: Path, info: dict) -> None:
        """``genotypes.json``, ``best_genotype.json``, ``cell_{normal,reduction}.png``, ``train_command.txt``."""
        from convzoo.nas.draw import draw_cell

        out.mkdir(parents=True, exist_ok=True)
        kept = [(score, genotype_of(a, model.blocks)) for score, a in
                zip(model.top_scores.tolist(), model.top_actions.tolist()) if score >= 0] or [(-1.0, model.best())]
        (out / "genotypes.json").write_text(json.dumps(
            [{"shared_weight_dev_accuracy": score, "genotype": g.to_data()} for score, g in kept], indent=1) + "\n")
        best, path = kept[0][1], out / "best_genotype.json"
        (out / "train_command.txt").write_text(train_command(path, info) + "\n")
        if path.is_file() and path.read_text() == best.to_json() and (out / "cell_reduction.png").is_file():
            return  # the last dev evaluation wrote them; the test evaluation follows with the same best
        path.write_text(best.to_json())
        for name in ("normal", "reduction"):
            draw_cell(getattr(best, name), out / f"cell_{name}.png", title=f"{name} cell ({out.name})")


def train_command(genotype_file: Path, info: dict, epochs: int = 20) -> str:
    """The ``convzoo train`` command line that trains the genotype of ``genotype_file`` from scratch at the
    search's N, filters and data (NASNet's CIFAR stem)."""
    s = info.get("search", {})
    words = ["convzoo", "train", "--model", "nasnet", "--genotype", str(genotype_file),
             "--model-option", f"num_cells={s.get('cells', 1)}", "--model-option", f"filters={s.get('filters', 8)}",
             "--model-option", "stem=cifar", "--data", str(s.get("data", "digits"))]
    if s.get("image_size"):
        words += ["--image-size", str(s["image_size"])]
    words += ["--epochs", str(epochs), "--optimizer", "sgd", "--lr", "0.05", "--weight-decay", "3e-4"]
    return shlex.join(words)



@register_model(kind="supernet")
def nasnet_search(num_classes: int = 10, in_chans: int = 3, cells: int = 1, filters: int = 8, blocks: int = 5,
                  top: int = 5) -> SearchModel:
    """The state of a NASNet cell search (``convzoo search``): shared weights of every operation at N = ``cells``
    and ``filters``, the controller, the best genotypes."""
    return SearchModel(num_classes, in_chans, cells, filters, blocks, top)
