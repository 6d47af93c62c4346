"""LN-only training does the necessary work only: input gradients through frozen matrices, no
weight-gradient products or activations kept for them, no gradient on frozen tensors."""
import torch
from torch.profiler import ProfilerActivity, profile

from lntune.data.encode import collate
from lntune.method import build_method, prepare
from lntune.train import train

from .test_loop import config, feats


def _graph(loss: torch.Tensor) -> list:
    seen, stack, nodes = set(), [loss.grad_fn], []
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        nodes.append(node)
        stack.extend(n for n, _ in node.next_functions)
    return nodes


def _linear_nodes(nodes) -> tuple[list, list]:
    """(frozen, trainable) matrix-product nodes of linear layers: addmm(bias, x, W^T) and mm(x, W^T)."""
    frozen, trainable = [], []
    for n in nodes:
        if type(n).__name__ in ("AddmmBackward0", "MmBackward0"):
            weight_path = n.next_functions[-1][0]
            (trainable if weight_path is not None else frozen).append(n)
    return frozen, trainable


def _step_loss(make_lm, arch="bert"):
    lm = make_lm(arch)
    tuning = prepare(lm, build_method("ln"))
    lm.model.train()
    batch = collate(feats(lm, 8, 1), lm.tokenizer.pad_token_id)
    return tuning, lm.model(**batch).loss


def test_frozen_linears_keep_no_input_for_a_weight_gradient(make_lm):
    tuning, loss = _step_loss(make_lm)
    frozen, trainable = _linear_nodes(_graph(loss))
    # 4 blocks x 6 linears, and the pooler; the classifier is the trainable one
    assert len(frozen) == 4 * 6 + 1 and len(trainable) == 1
    assert all(n._saved_mat1 is None for n in frozen)  # the layer input is not kept
    assert all(n._saved_mat1 is not None for n in trainable)  # the head's input is, for its weight gradient


def test_backward_runs_one_matrix_product_per_frozen_linear(make_lm):
    tuning, loss = _step_loss(make_lm)
    frozen, trainable = _linear_nodes(_graph(loss))
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        loss.backward()
    mm = sum(1 for e in prof.events() if e.name == "aten::mm")
    # an input gradient for each frozen linear; input and weight gradients for the trained head
    assert mm == len(frozen) + 2 * len(trainable)


def test_training_leaves_no_gradient_on_frozen_tensors(make_lm):
    lm = make_lm("gpt2")
    tuning = prepare(lm, build_method("ln", layers="top-half"))
    train(tuning, feats(lm, 16, 1), feats(lm, 8, 2), config(epochs=1))
    tuned = {id(t.param) for t in tuning.all}
    for name, p in lm.model.named_parameters():
        assert p.grad is None, name  # frozen ones never had one, tuned ones were released
        assert p.requires_grad == (id(p) in tuned), name
