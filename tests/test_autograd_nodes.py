"""pygan._autograd's C++ nodes (csrc/autograd/): the CPU training path of the loss ops records them
where they apply, and they give the Python nodes' results bit for bit (the same kernel pass, the
same scaling), recompute differentiably under create_graph and for a second backward, and refuse
what they cannot do with a clear error. Fresh random inputs on every run."""

from pathlib import Path

import pytest
import torch
import torch.autograd.forward_ad as fwAD

import pygan
from pygan._ops import adversarial_loss as loss_op
from pygan._ops import backend as _backend
from pygan._ops.loss_terms import LOSS_NAMES

NODES = _backend.load_nodes()
BUILT = any(Path(pygan.__file__).parent.glob("_autograd.*"))
needs_nodes = pytest.mark.skipif(NODES is None, reason="pygan._autograd is not built here")

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
PLAIN = [name for name in LOSS_NAMES if not name.startswith("relativistic")]
RELATIVISTIC = ["relativistic", "relativistic_average"]
G_NODE, D_NODE = "pygan::GeneratorLossAndGradBackward", "pygan::LossAndGradBackward"
NODE_NAMES = {"relativistic": "pygan::PairedLossAndGradBackward",
              "relativistic_average": "pygan::AveragedLossAndGradBackward"}


def _params(loss):
    return {"alpha": 0.5} if loss == "alpha" else {}


def _logits(n, dtype, rng):
    return (torch.randn(n, generator=rng, dtype=torch.float64) * 3).to(dtype)


def _call(role, real, fake, loss, reduction="mean"):
    if role == "D":
        return pygan.discriminator_loss(real, fake, loss, reduction=reduction, backend="cpu", **_params(loss))
    if role == "GE":
        return pygan.joint_generator_loss(real, fake, loss, reduction=reduction, backend="cpu", **_params(loss))
    real_logits = real if loss in RELATIVISTIC else None
    return pygan.generator_loss(fake, loss, real_logits=real_logits, reduction=reduction, backend="cpu",
                                **_params(loss))


@pytest.fixture
def python_nodes(monkeypatch):
    """The ops as they run without pygan._autograd: their Python autograd.Functions."""
    monkeypatch.setattr(loss_op, "_nodes", lambda: None)


def test_nodes_load_where_built():
    """A built module must load: a silent fall-back would cost every CPU loss call its speed."""
    if not BUILT:
        pytest.skip("pygan._autograd was not built (torch's headers were missing at build time)")
    assert NODES is not None, "pygan._autograd is built but does not load (or was built for another torch)"


def test_module_built_for_another_torch_is_not_used(monkeypatch):
    if not BUILT:
        pytest.skip("pygan._autograd was not built")
    monkeypatch.setattr(torch, "__version__", "0.0.0")
    assert _backend.load_nodes.__wrapped__() is None


@needs_nodes
@pytest.mark.parametrize("role,name", [("D", D_NODE), ("G", G_NODE), ("GE", D_NODE)])
def test_cpu_training_path_records_the_cpp_node(role, name, rng):
    real = _logits(9, torch.float32, rng).requires_grad_()
    fake = _logits(7, torch.float32, rng).requires_grad_()
    assert _call(role, real, fake, "gan").grad_fn.name() == name
    with torch.no_grad():
        assert _call(role, real, fake, "gan").grad_fn is None


@needs_nodes
@pytest.mark.parametrize("loss", RELATIVISTIC)
@pytest.mark.parametrize("role", ["D", "G"])
def test_relativistic_losses_record_their_cpp_nodes(loss, role, rng):
    """In the compute dtype (the node forms the differences or means itself); other dtypes cast
    first and take the plain node."""
    real = _logits(9, torch.float32, rng).requires_grad_()
    fake = _logits(9, torch.float32, rng).requires_grad_()
    assert _call(role, real, fake, loss).grad_fn.name() == NODE_NAMES[loss]
    half = [x.detach().half().requires_grad_() for x in (real, fake)]
    assert _call(role, *half, loss).grad_fn.name() != NODE_NAMES[loss]


@needs_nodes
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("role", ["D", "G", "GE"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d).split(".")[-1])
@pytest.mark.parametrize("loss", LOSS_NAMES)
def test_cpp_node_equals_python_node(loss, dtype, role, reduction, rng, monkeypatch):
    """Same loss and gradients, bit for bit, for an upstream of one (the saved gradients handed over
    as they are), another upstream (scaled in the compute dtype, then rounded to the logits' dtype)
    and a side that needs no gradient."""
    n_real, n_fake = (int(n) for n in torch.randint(1, 300, (2,), generator=rng))
    if loss == "relativistic":
        n_fake = n_real
    real, fake = _logits(n_real, dtype, rng), _logits(n_fake, dtype, rng)
    up = None if torch.rand((), generator=rng) < 0.5 else torch.randn((), generator=rng).to(dtype)
    real_grad = bool(torch.rand((), generator=rng) < 0.7)

    def run():
        r = real.clone().requires_grad_(real_grad)
        f = fake.clone().requires_grad_()
        out = _call(role, r, f, loss, reduction)
        name = out.grad_fn.name()
        out.backward(up)
        return out.detach(), r.grad, f.grad, name

    out, g_real, g_fake, name = run()
    assert name.startswith("pygan::") or (loss in RELATIVISTIC and dtype not in (torch.float32, torch.float64))
    monkeypatch.setattr(loss_op, "_nodes", lambda: None)
    out_py, g_real_py, g_fake_py, name_py = run()
    assert not name_py.startswith("pygan::")
    if loss in RELATIVISTIC and role != "D":  # the real side's gradient of G's loss: the same sums
        g_real, g_real_py = g_fake, g_fake_py
    assert torch.equal(out, out_py)
    assert torch.equal(g_fake, g_fake_py)
    assert (g_real is None and g_real_py is None) or torch.equal(g_real, g_real_py)
    assert g_fake.dtype == dtype


@needs_nodes
@pytest.mark.parametrize("role", ["D", "G"])
@pytest.mark.parametrize("loss", ["gan", "hinge", "alpha", "js", "wasserstein", *RELATIVISTIC])
def test_gradcheck_and_gradgradcheck(loss, role, rng):
    """Through the C++ node: backward from the saved gradients, create_graph through the Python
    recomputation it calls, in float64 on fresh inputs."""
    real = _logits(6, torch.float64, rng).requires_grad_()
    fake = _logits(6 if loss == "relativistic" else 5, torch.float64, rng).requires_grad_()
    assert _call(role, real, fake, loss).grad_fn.name().startswith("pygan::")

    def fn(r, f):
        return _call(role, r, f, loss) + 0 * r.sum()

    assert torch.autograd.gradcheck(fn, (real, fake))
    assert torch.autograd.gradgradcheck(fn, (real, fake))


@needs_nodes
@pytest.mark.parametrize("role", ["D", "G"])
@pytest.mark.parametrize("loss", ["js", *RELATIVISTIC])
def test_second_backward_and_create_graph_match_the_first(loss, role, rng):
    """retain_graph: the second backward recomputes and agrees with the handed-over gradients (a
    relativistic loss's kernel call again: the same bits); a backward after the graph was freed
    gets torch's own error."""
    real = _logits(50, torch.float32, rng).requires_grad_()
    fake = _logits(50 if loss == "relativistic" else 40, torch.float32, rng).requires_grad_()
    up = torch.tensor(2.5)
    out = _call(role, real, fake, loss)
    first = torch.autograd.grad(out, fake, up, retain_graph=True)[0]
    second = torch.autograd.grad(out, fake, up)[0]
    if loss in RELATIVISTIC:
        assert torch.equal(second, first)
    torch.testing.assert_close(second, first, rtol=2e-6, atol=0)
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        torch.autograd.grad(out, fake, up)
    graph = torch.autograd.grad(_call(role, real, fake, loss), fake, up, create_graph=True)[0]
    assert graph.requires_grad
    torch.testing.assert_close(graph, first, rtol=2e-6, atol=0)


@needs_nodes
def test_logits_modified_in_place_are_caught_on_recompute(rng):
    fake = _logits(8, torch.float32, rng)
    leaf = fake.clone().requires_grad_()
    x = leaf * 1.0
    out = pygan.generator_loss(x, "gan", backend="cpu")
    with torch.no_grad():
        x.add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        torch.autograd.grad(out, leaf, create_graph=True)


@needs_nodes
def test_forward_mode_ad_is_refused(rng):
    with fwAD.dual_level():
        x = fwAD.make_dual(_logits(5, torch.float64, rng), torch.ones(5, dtype=torch.float64))
        x.requires_grad_()
        with pytest.raises(RuntimeError, match="forward-mode"):
            pygan.generator_loss(x, "gan", backend="cpu")


@needs_nodes
def test_tensor_subclass_keeps_the_python_node(rng):
    class Logits(torch.Tensor):
        pass

    x = _logits(6, torch.float32, rng).as_subclass(Logits).requires_grad_()
    out = pygan.generator_loss(x, "hinge", backend="cpu")
    assert not out.grad_fn.name().startswith("pygan::")
    out.backward()
    torch.testing.assert_close(x.grad.as_subclass(torch.Tensor), torch.full((6,), -1 / 6))


@needs_nodes
def test_recompute_errors_reach_the_caller(rng):
    """An exception raised by the Python recomputation keeps its type and message; a wrong result
    is an error naming the node, not a crash."""
    fake = _logits(4, torch.float64, rng).requires_grad_()
    assert loss_op._nodes() is NODES  # (its first call sets the recomputation: before ours)

    def boom(*args):
        raise ValueError("boom from the recomputation")

    try:
        NODES.set_recompute("adversarial_loss", boom)
        with pytest.raises(ValueError, match="boom from the recomputation"):
            torch.autograd.grad(pygan.generator_loss(fake, "gan", backend="cpu"), fake, create_graph=True)
        NODES.set_recompute("adversarial_loss", lambda *args: (None, None, None))
        with pytest.raises(RuntimeError, match="loss node.s recomputation returned not 1 gradients"):
            torch.autograd.grad(pygan.generator_loss(fake, "gan", backend="cpu"), fake, create_graph=True)
    finally:
        NODES.set_recompute("adversarial_loss", loss_op._node_recompute)
    assert torch.autograd.grad(pygan.generator_loss(fake, "gan", backend="cpu"), fake, create_graph=True)[0].requires_grad


@needs_nodes
def test_entry_refuses_what_it_cannot_read(rng):
    from pygan._ops import activation as act_op, penalty_head as head_op

    for op in (loss_op, act_op, head_op):  # each op sets its recomputation at its first call
        assert op._nodes() is NODES
    x = _logits(6, torch.float32, rng)
    with pytest.raises(TypeError, match="takes 9 arguments"):
        NODES.loss_and_grad(None, x)
    with pytest.raises(TypeError, match="x1 must be a tensor"):
        NODES.loss_and_grad(None, [1.0], 0, 0, 1.0, 1.0, 0.0, 1, 0)
    for bad in (x.reshape(2, 3).t(), x.to(torch.int32)):
        with pytest.raises(TypeError, match="x1 must be a contiguous CPU tensor"):
            NODES.loss_and_grad(None, bad, 0, 0, 1.0, 1.0, 0.0, 1, 0)
    with pytest.raises(ValueError, match="reduction must be 1"):
        NODES.loss_and_grad(None, x, 0, 0, 1.0, 1.0, 0.0, 0, 0)
    with pytest.raises(TypeError, match="x0 must be a tensor"):
        NODES.loss_and_grad(3, x, 0, 0, 1.0, 1.0, 0.0, 1, 0)
    with pytest.raises(ValueError, match="mode must be"):
        NODES.loss_and_grad(x, x, 0, 0, 1.0, 1.0, 0.0, 1, 3)
    for x0, x1 in ((None, x), (x[:5].clone(), x), (x.half(), x.half())):
        with pytest.raises(ValueError, match="relativistic loss takes two tensors"):
            NODES.loss_and_grad(x0, x1, 0, 0, 1.0, 1.0, 0.0, 1, 1)
    with pytest.raises(TypeError, match="takes 4 arguments"):
        NODES.penalty_head(x)
    with pytest.raises(ValueError, match="batch dimension"):
        NODES.penalty_head(x[0].clone(), 0, 1.0, 1.0)
    with pytest.raises(TypeError):
        NODES.set_recompute("adversarial_loss", 3)


# The gradient-penalty head alone (csrc/autograd/penalty_head.cpp).


@needs_nodes
@pytest.mark.parametrize("kind", ["two-sided", "one-sided", "squared"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d).split(".")[-1])
def test_penalty_node_equals_python_node(kind, dtype, rng, monkeypatch):
    """The penalty and its gradient bit for bit, for upstreams of one and another value; the
    node is what pygan.penalties records for the penalty alone."""
    from pygan._ops import penalty_head as head_op

    rows, cols = (int(n) for n in torch.randint(1, 40, (2,), generator=rng))
    g = _logits((rows, cols), dtype, rng)
    up = None if torch.rand((), generator=rng) < 0.5 else torch.rand((), generator=rng).to(torch.promote_types(dtype, torch.float32))

    def run():
        x = g.clone().requires_grad_()
        out = pygan.penalties.gradient_norm_penalty(x, head=kind, center=1.0, weight=2.5, backend="cpu")
        name = out.grad_fn.name()
        out.backward(up)
        return out.detach(), x.grad, name

    *got, name = run()
    assert name == "pygan::PenaltyHeadBackward"
    monkeypatch.setattr(head_op, "_nodes", lambda: None)
    *want, name_py = run()
    assert name_py != name
    for a, b in zip(got, want):
        assert torch.equal(a, b)


@needs_nodes
def test_penalty_node_recomputes_for_create_graph_and_a_second_backward(rng):
    g = _logits((5, 4), torch.float64, rng).requires_grad_()

    def fn(g):
        return pygan.penalties.gradient_norm_penalty(g, backend="cpu")

    assert fn(g).grad_fn.name() == "pygan::PenaltyHeadBackward"
    assert torch.autograd.gradcheck(fn, (g,))
    out = fn(g)
    first = torch.autograd.grad(out, g, retain_graph=True)[0]
    torch.testing.assert_close(torch.autograd.grad(out, g)[0], first, rtol=1e-13, atol=0)
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        torch.autograd.grad(out, g)
    with torch.no_grad():
        assert fn(g).grad_fn is None
        torch.testing.assert_close(fn(g), out.detach(), rtol=0, atol=0)


# The fused bias + LeakyReLU (csrc/autograd/activation.cpp).

SHAPES = [(7,), (5, 3), (2, 3, 4, 5), (0, 3), (3, 1, 1, 1)]


@needs_nodes
@pytest.mark.parametrize("upstream", ["sum", "tensor"])
@pytest.mark.parametrize("bias", [False, True], ids=["no_bias", "bias"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d).split(".")[-1])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_activation_node_equals_python_node(shape, dtype, bias, upstream, rng, monkeypatch):
    """y, d/dx and d/dbias bit for bit, for the expanded upstream of a sum (read as one value) and a
    general one; a bias that is a parameter takes the C++ node too."""
    from pygan._ops import activation as act_op

    x = _logits(shape, dtype, rng)
    b = torch.nn.Parameter(_logits(shape[1], dtype, rng)) if bias and len(shape) > 1 else None
    up = _logits(shape, dtype, rng)
    slope = float(torch.rand((), generator=rng)) * 0.5

    def run():
        xx = x.clone().requires_grad_()
        if b is not None:
            b.grad = None
        y = pygan.nn.bias_leaky_relu(xx, b, slope, backend="cpu")
        name = y.grad_fn.name()
        (y.sum() if upstream == "sum" else (y * up).sum()).backward()
        return y.detach(), xx.grad, None if b is None else b.grad.clone(), name

    *got, name = run()
    assert name == "pygan::BiasLeakyReLUBackward"
    monkeypatch.setattr(act_op, "_nodes", lambda: None)
    *want, name_py = run()
    assert name_py != name
    for g, w in zip(got, want):
        assert (g is None and w is None) or torch.equal(g, w)


@needs_nodes
def test_activation_node_gradgradcheck_and_freed_graph(rng):
    x = _logits((4, 3, 2), torch.float64, rng).requires_grad_()
    b = _logits(3, torch.float64, rng).requires_grad_()

    def fn(x, b):
        return pygan.nn.bias_leaky_relu(x, b, 0.3, backend="cpu")

    assert fn(x, b).grad_fn.name() == "pygan::BiasLeakyReLUBackward"
    assert torch.autograd.gradcheck(fn, (x, b))
    assert torch.autograd.gradgradcheck(fn, (x, b))
    y = fn(x, b).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        y.backward()
    with torch.no_grad():
        assert fn(x, b).grad_fn is None


@needs_nodes
def test_activation_entry_refuses_what_it_cannot_read(rng):
    from pygan._ops import activation as act_op

    assert act_op._nodes() is NODES  # (the op sets its recomputation at its first call)
    x = _logits((4, 3), torch.float32, rng)
    with pytest.raises(TypeError, match="takes 3 arguments"):
        NODES.bias_leaky_relu(x, None)
    with pytest.raises(TypeError, match="bias_leaky_relu: x must be a contiguous CPU tensor"):
        NODES.bias_leaky_relu(x.t(), None, 0.2)
    with pytest.raises(ValueError, match="bias must be"):
        NODES.bias_leaky_relu(x, torch.zeros(4), 0.2)
    with pytest.raises(ValueError, match="no C\\+\\+ node for op"):
        NODES.set_recompute("nothing", print)


@needs_nodes
def test_large_inputs_run_without_the_gil_in_forward_and_backward(rng, monkeypatch):
    """Past 2^16 elements a forward call releases the GIL around its kernel; a backward, which the
    engine runs without it, must not touch it (an abort, not an error, if it did)."""
    from pygan._ops import activation as act_op

    x = _logits((300, 300), torch.float32, rng)
    b = _logits(300, torch.float32, rng)

    def run():
        xx, bb = x.clone().requires_grad_(), b.clone().requires_grad_()
        y = pygan.nn.bias_leaky_relu(xx, bb, 0.2, backend="cpu")
        loss = pygan.generator_loss(y.reshape(-1), "gan", backend="cpu")
        loss.backward()
        return loss.detach(), xx.grad, bb.grad

    got = run()
    monkeypatch.setattr(act_op, "_nodes", lambda: None)
    monkeypatch.setattr(loss_op, "_nodes", lambda: None)
    for g, w in zip(got, run()):
        assert torch.equal(g, w)


@needs_nodes
def test_walk_unchanged_compares_objects_and_pointers():
    """EMA's per-update check (csrc/autograd/multi_tensor.cpp): every dict value the same object in
    order, and every tensor's data where it was."""
    a, b = torch.zeros(3), torch.ones(2)
    slots = [{"w": a}, {}, {"b": b, "none": None}]
    members = [a, b, None]
    ptrs = [a.data_ptr(), b.data_ptr()]
    assert NODES.walk_unchanged(slots, members, [a, b], ptrs, [], [])
    assert not NODES.walk_unchanged(slots, [b, a, None], [a, b], ptrs, [], [])
    assert not NODES.walk_unchanged(slots, members + [a], [a, b], ptrs, [], [])
    assert not NODES.walk_unchanged(slots, members[:2], [a, b], ptrs, [], [])
    assert not NODES.walk_unchanged(slots, members, [b, a], ptrs, [], [])
    assert not NODES.walk_unchanged(slots, members, [a], ptrs, [], [])
    a.data = torch.zeros(3)  # the same object, its data moved
    assert not NODES.walk_unchanged(slots, members, [a, b], ptrs, [], [])
    with pytest.raises(TypeError, match="takes lists"):
        NODES.walk_unchanged(tuple(slots), members, [a, b], ptrs, [], [])


@needs_nodes
def test_concurrent_backward_through_one_retained_graph(rng):
    """Two threads backpropagating through one retained graph: one takes the saved gradients, the
    other recomputes; both get the gradient."""
    import threading

    fake = _logits(1000, torch.float32, rng).requires_grad_()
    out = pygan.generator_loss(fake, "js", backend="cpu")
    expect = torch.autograd.grad(pygan.generator_loss(fake, "js", backend="cpu"), fake)[0]
    results, errors = [], []

    def run():
        try:
            results.append(torch.autograd.grad(out, fake, retain_graph=True)[0])
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for r in results:
        torch.testing.assert_close(r, expect, rtol=2e-6, atol=0)
