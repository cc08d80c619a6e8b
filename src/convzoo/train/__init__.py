"""The one training engine of every task: ``fit(TrainConfig(...))`` trains, checkpoints, logs and evaluates;
``load_run`` reads a run folder back. The task (:mod:`convzoo.tasks`) supplies data, model, losses, evaluation.

    from convzoo.train import TrainConfig, fit, load_run
    metrics = fit(TrainConfig(model="resnet20", data="cifar10:DIR", epochs=30))
    config, task, info, model = load_run(metrics["run_dir"])
"""

from convzoo.train.config import DEFAULT_MODEL, TrainConfig
from convzoo.train.engine import Budget, NonFiniteLossError, StepOptions, TrainState, train_one_epoch
from convzoo.train.fit import RESUMABLE, fit
from convzoo.train.run import load_run, task_of

__all__ = ["DEFAULT_MODEL", "RESUMABLE", "Budget", "NonFiniteLossError", "StepOptions", "TrainConfig", "TrainState",
           "fit", "load_run", "task_of", "train_one_epoch"]
