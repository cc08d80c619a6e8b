"""NASNet's controller and ENAS's shared weights: sampling, log-probabilities, entropy, a policy-gradient step,
and a sampled genotype on the supernet."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from convzoo.models.nasnet_genotype import NASNET_A, OP_NAMES
from convzoo.nas import Controller, Supernet, actions_of, genotype_of, uniform_actions
from convzoo.nas.controller import decision_sizes


def test_sampling_shapes_log_probs_and_entropy():
    torch.manual_seed(0)
    controller = Controller(blocks=5)
    assert len(controller.heads) == 2 * 5 * 5 and controller.lstm.hidden_size == 100  # 5B softmaxes per cell
    actions, log_prob, entropy = controller(3, generator=torch.Generator().manual_seed(1))
    assert actions.shape == (3, 50) and log_prob.shape == entropy.shape == (3,)
    sizes = torch.tensor(decision_sizes(5))
    assert ((actions >= 0) & (actions < sizes)).all()
    # teacher forcing gives the same log-probabilities; they are the sums of each decision's log-probability
    _, again, _ = controller(actions=actions)
    torch.testing.assert_close(again, log_prob)
    torch.testing.assert_close(controller.decision_probabilities(actions).log().sum(1), log_prob)
    # near-uniform at initialization: the entropy is close to that of the uniform policy
    uniform = sizes.double().log().sum().item()
    assert 0.9 * uniform < entropy[0] <= uniform + 1e-4
    greedy, _, _ = controller(2, greedy=True)
    assert torch.equal(greedy[0], greedy[1])


def test_actions_and_genotypes_round_trip():
    actions = uniform_actions(4, 5, torch.Generator().manual_seed(0))
    for row in actions:
        genotype = genotype_of(row, 5)
        assert actions_of(genotype) == row.tolist()
        assert 6 in genotype.normal.concat  # the last block is never read: always in the output
    assert genotype_of(actions_of(NASNET_A), 5).normal.blocks == NASNET_A.normal.blocks


@pytest.mark.parametrize("method", ["reinforce", "ppo"])
def test_one_update_moves_probability_toward_the_rewarded_choice(method):
    torch.manual_seed(0)
    controller = Controller(blocks=1)
    good, bad = controller(1, generator=torch.Generator().manual_seed(0))[0], None
    bad = good.clone()
    bad[0, 2] = (good[0, 2] + 1) % len(OP_NAMES)  # another operation A for the first block
    actions = torch.cat([good, bad])
    before = controller.decision_probabilities(actions)[:, 2]
    stats = controller.update(actions, torch.tensor([1.0, 0.0]), method=method, lr=0.01)
    after = controller.decision_probabilities(actions)[:, 2]
    assert after[0] > before[0] and after[1] < before[1]  # the rewarded operation gained, the other lost
    assert stats["baseline"] == 0.5 and float(controller.baseline) == 0.5 and int(controller.adam_steps) >= 1
    controller.update(actions, torch.tensor([1.0, 1.0]), method=method, baseline_decay=0.9)
    assert float(controller.baseline) == pytest.approx(0.9 * 0.5 + 0.1 * 1.0)


def test_supernet_runs_a_random_genotype_on_shared_weights():
    torch.manual_seed(0)
    net = Supernet(num_classes=3, in_chans=1, num_cells=1, filters=4, blocks=2)
    genotype = genotype_of(uniform_actions(1, 2, torch.Generator().manual_seed(3))[0], 2)
    logits = net(torch.randn(4, 1, 8, 8), genotype)
    assert logits.shape == (4, 3)
    logits.sum().backward()
    used = {op for block in genotype.normal.blocks for op, _ in block}
    cell = net.cells[0]
    for op in OP_NAMES:  # only the sampled operations of block 0 get gradients
        sampled = op == genotype.normal.blocks[0][0][0]
        assert any(p.grad is not None for p in cell.ops[0][0][op].parameters()) == sampled, op
    assert used


def test_supernet_cells_give_the_same_width_whatever_the_genotype_concatenates():
    """ENAS's masked output projection: a cell's output has 2 F channels for any set of concatenated states, and
    only the columns of the states present get gradients."""
    torch.manual_seed(0)
    net = Supernet(num_classes=3, in_chans=1, num_cells=1, filters=4, blocks=2)
    cell, x = net.cells[0], torch.randn(2, 12, 8, 8)
    widths = set()
    for seed in range(6):
        genotype = genotype_of(uniform_actions(1, 2, torch.Generator().manual_seed(seed))[0], 2)
        out = cell(x, x, genotype.normal)
        widths.add(out.shape[1])
        net.zero_grad()
        out.square().sum().backward()
        used = set(genotype.normal.concat)
        columns = cell.output.grad.abs().sum((0, 2, 3)).view(4, 8).sum(1)  # B + 2 slots of 2 F columns
        assert {i for i in range(4) if columns[i] > 0} == used
    assert widths == {8}


def test_supernet_operations_start_near_the_identity():
    from convzoo.nas.supernet import _op_weight

    x = torch.randn(2, 6, 5, 5)
    exact = _op_weight(4, 6, 3, 3, noise=0.0)
    assert torch.equal(F.conv2d(x, exact, padding=1), x[:, :4])
    depthwise = _op_weight(6, 1, 5, 5, noise=0.0)
    assert torch.equal(F.conv2d(x, depthwise, padding=2, groups=6), x)
