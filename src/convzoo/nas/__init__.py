"""Neural architecture search over NASNet's cell space (Zoph et al. 2018): the controller, ENAS's weight sharing
(Pham et al. 2018) and the search task of the one engine (``convzoo search``).

    from convzoo.nas import Controller, Supernet, genotype_of
    actions, log_prob, entropy = Controller(blocks=5)(count=4)
    logits = Supernet(num_classes=10, in_chans=1)(images, genotype_of(actions[0], 5))
"""

from __future__ import annotations

import convzoo.tasks  # noqa: F401  (first: the task registry imports convzoo.nas.task)
from convzoo.models.nasnet_genotype import (
    NASNET_A,
    OP_NAMES,
    OPERATIONS,
    CellGenotype,
    Genotype,
    load_genotype,
)
from convzoo.nas.controller import Controller, actions_of, genotype_of, uniform_actions
from convzoo.nas.draw import draw_cell
from convzoo.nas.supernet import Supernet
from convzoo.nas.task import SearchModel, SearchTask, train_command

__all__ = ["NASNET_A", "OPERATIONS", "OP_NAMES", "CellGenotype", "Controller", "Genotype", "SearchModel",
           "SearchTask", "Supernet", "actions_of", "draw_cell", "genotype_of", "load_genotype", "train_command",
           "uniform_actions"]
