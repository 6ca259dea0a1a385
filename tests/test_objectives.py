"""Objectives as compositions: lists of gradient penalties (each with its own weight, lazy interval
and target) summed into D's loss, against a float64 autograd reference that runs every penalty on
its own forward; D forwards per step; per-sample penalty values; and the errors."""

import copy

import pytest
import torch

import pygan
from pygan import models

from . import reference as ref
from .conftest import LR, assert_same_params, reference_updates, sgd, sgd_update

SQUARED = ("r1", "r2")


def _pair(seed=0):
    torch.manual_seed(seed)
    g = models.MLPGenerator(latent_dim=3, out_shape=(2,), hidden=8, depth=2).double()
    d = models.MLPDiscriminator((2,), hidden=8, depth=2).double()
    return g, d


def _real(m=16, seed=5):
    return pygan.data.ring().sample(m, torch.Generator().manual_seed(seed)).double()




def _points(target, real, fake, gen, spread=0.5):
    """The penalty's points, drawing from ``gen`` as pygan.penalties does (interpolates: one eps per
    sample; perturbed: the elementwise noise, then one eps per sample)."""
    if target == "real":
        return real
    if target == "fake":
        return fake
    if target == "interpolates":
        eps = torch.rand((real.shape[0],), generator=gen).double()[:, None]
        return fake + eps * (real - fake)
    noise = torch.rand(real.shape, generator=gen)
    delta = (spread * real.float().std() * noise).double()
    eps = torch.rand((real.shape[0],), generator=gen).double()[:, None]
    return real + eps * delta


def _reference_penalty(d, spec, real, fake, gen):
    """lazy * weight * mean_i phi(||d D(x_i) / d x_i||) by plain double backprop, on its own forward."""
    kind, target, weight, lazy = spec
    x = _points(target, real.detach(), fake.detach(), gen).detach().requires_grad_(True)
    (gx,) = torch.autograd.grad(d(x).sum(), x, create_graph=True)
    head = "squared" if kind in SQUARED else "one-sided" if kind == "one-sided" else "two-sided"
    values, _ = ref.penalty_values(gx, head, 1.0, weight / 2 if kind in SQUARED else weight)
    return lazy * values.mean()


def _module(spec):
    kind, target, weight, lazy = spec
    return pygan.GradientPenalty(kind, weight=weight, lazy=lazy, target=target)


# (kind, target, weight, lazy) per penalty.
COMPOSITIONS = {
    "r1+r2": [("r1", "real", 3.0, 1), ("r2", "fake", 3.0, 1)],
    "r1+wgan-gp": [("r1", "real", 2.0, 1), ("wgan-gp", "interpolates", 0.5, 1)],
    "r1-lazy2+r2-lazy3": [("r1", "real", 1.5, 2), ("r2", "fake", 4.0, 3)],
    "r1@interpolates+dragan": [("r1", "interpolates", 2.0, 1), ("dragan", "perturbed", 0.3, 1)],
    "one-sided+r2@real": [("one-sided", "interpolates", 1.0, 1), ("r2", "real", 0.7, 2)],
}


@pytest.mark.parametrize("loss", ["gan", "relativistic"])
@pytest.mark.parametrize("fused", [False, True], ids=["alternating", "fused"])
@pytest.mark.parametrize("name", list(COMPOSITIONS))
def test_composition_equals_the_float64_reference(name, fused, loss):
    """Three steps (lazy phases included) of GAN(penalty=[...]) equal plain autograd with every
    penalty on its own forward, the same noise and the same random points."""
    specs = COMPOSITIONS[name]
    g, d = _pair()
    g_ref, d_ref = copy.deepcopy(g), copy.deepcopy(d)
    gan = pygan.GAN(g, d, loss=loss, fused=fused, penalty=[_module(s) for s in specs],
                    g_optimizer=sgd, d_optimizer=sgd, seed=123)
    gen = torch.Generator().manual_seed(123)
    for step in range(3):
        real = _real(seed=step)
        stats = gan.step(real)
        fake = g_ref(torch.randn((16, 3), generator=gen).double())
        v_r, v_f = d_ref(real), d_ref(fake.detach())
        l_d = pygan.discriminator_loss(v_r, v_f, loss)
        parts = [_reference_penalty(d_ref, s, real, fake, gen) if step % s[3] == 0 else None for s in specs]
        total = l_d + sum(p for p in parts if p is not None)
        grads_d = torch.autograd.grad(total, list(d_ref.parameters()))

        def g_loss():  # fused: G's gradient at the same point, through the same fakes
            if fused:
                return pygan.generator_loss(d_ref(fake), loss, real_logits=v_r.detach())
            new = g_ref(torch.randn((16, 3), generator=gen).double())
            return pygan.generator_loss(d_ref(new), loss, real_logits=d_ref(real).detach())

        reference_updates(d_ref, g_ref, grads_d, fused, g_loss)
        what = f"{name} {loss} {'fused' if fused else 'alternating'} step {step}"
        assert_same_params(d, d_ref, f"{what}: D")
        assert_same_params(g, g_ref, f"{what}: G")
        expect_pen = sum(p.item() for p in parts if p is not None)
        assert stats["penalty"].item() == pytest.approx(expect_pen, rel=1e-10, abs=1e-14), what
        for key, part in zip(gan.objective.stat_names, parts):
            assert stats[key].item() == pytest.approx(0.0 if part is None else part.item(), rel=1e-10, abs=1e-14)
        assert stats["d_loss"].item() == pytest.approx(l_d.item(), rel=1e-12), what


@pytest.mark.parametrize("fused", [False, True], ids=["alternating", "fused"])
@pytest.mark.parametrize("penalty,forwards", [
    ("r1+r2", 2), ([pygan.GradientPenalty("r1"), pygan.GradientPenalty("r2", target="real")], 2),
    ("r1+wgan-gp", 3), ("r1+r2+dragan", 3), ("wgan-gp+dragan", 4),
])
def test_d_forwards_per_d_step(penalty, forwards, fused):
    """Penalties on the real or the fake batch share the loss's forward, however many there are;
    each penalty on its own points runs D once more."""
    g, d = _pair()
    calls = []
    d.register_forward_hook(lambda *_: calls.append(1))
    gan = pygan.GAN(g, d, fused=fused, penalty=penalty, g_optimizer=sgd, d_optimizer=sgd, seed=1)
    gan.step(_real())
    assert len(calls) == forwards + (0 if fused else 1)  # the alternating G step runs D once more


def test_bigan_fused_step_shares_the_forward_with_attached_pairs():
    """BiGAN's fused step: the real pairs depend on E and the fakes on G; R1 and R2 take their
    gradients with respect to those pairs as they are, and equal the reference on detached ones."""
    torch.manual_seed(0)
    g = models.MLPGenerator(latent_dim=3, out_shape=(2,), hidden=8, depth=2).double()
    e = models.MLPEncoder((2,), 3, hidden=8, depth=2).double()
    d = models.JointMLPDiscriminator((2,), 3, hidden=8, depth=2).double()
    g_ref, e_ref, d_ref = copy.deepcopy(g), copy.deepcopy(e), copy.deepcopy(d)
    calls = []
    d.register_forward_hook(lambda *_: calls.append(1))
    bigan = pygan.BiGAN(g, e, d, fused=True, penalty="r1+r2", g_optimizer=sgd, d_optimizer=sgd, seed=123)
    real = _real()
    bigan.step(real)
    assert len(calls) == 2
    z = torch.randn((16, 3), generator=torch.Generator().manual_seed(123)).double()
    real_pair, fake_pair = torch.cat([real, e_ref(real)], 1), torch.cat([g_ref(z), z], 1)
    v_r, v_f = d_ref(real_pair), d_ref(fake_pair)
    pens = [_reference_penalty(d_ref, (k, t, 10.0, 1), real_pair, fake_pair, None)
            for k, t in (("r1", "real"), ("r2", "fake"))]
    l_d = ref.discriminator_loss(v_r, v_f, "gan") + sum(pens)
    grads_d = torch.autograd.grad(l_d, list(d_ref.parameters()), retain_graph=True)
    l_g = ref.joint_generator_loss(v_r, v_f, "gan")
    grads_g = torch.autograd.grad(l_g, [p for m in (g_ref, e_ref) for p in m.parameters()])
    sgd_update(d_ref, grads_d)
    with torch.no_grad():
        for p, gr in zip([p for m in (g_ref, e_ref) for p in m.parameters()], grads_g):
            p -= LR * gr
    for a, b, name in ((d, d_ref, "D"), (g, g_ref, "G"), (e, e_ref, "E")):
        assert_same_params(a, b, name)


def test_penalty_lists_in_stats_repr_and_checkpoints(tmp_path):
    g, d = _pair()
    gan = pygan.GAN(g, d, penalty=[pygan.GradientPenalty("r1", weight=1.0, lazy=2),
                                   pygan.GradientPenalty("r1", weight=2.0, target="fake"), "r2"],
                    seed=3)
    assert [p.name for p in gan.penalties] == ["r1", "r1@fake", "r2"]
    stats = gan.step(_real())
    assert {"penalty_r1", "penalty_r1@fake", "penalty_r2"} <= set(stats)
    total = sum(stats[k] for k in ("penalty_r1", "penalty_r1@fake", "penalty_r2"))
    assert stats["penalty"].item() == pytest.approx(total.item(), rel=1e-12)
    assert "penalty=[r1(weight=1, lazy=2), r1@fake(weight=2), r2(weight=10)]" in repr(gan)
    with pytest.raises(AttributeError, match="use .penalties"):
        gan.penalty
    path = gan.save(tmp_path / "c.pt")
    back = pygan.GAN.load(path)
    assert [(p.kind, p.target, p.weight, p.lazy, p.calls) for p in back.penalties] == \
        [(p.kind, p.target, p.weight, p.lazy, p.calls) for p in gan.penalties]
    a, b = gan.step(_real(seed=9)), back.step(_real(seed=9))
    assert all(torch.equal(a[k], b[k]) for k in a)
    # A GAN with another number of penalties refuses the state, naming it.
    other = pygan.GAN(*_pair(), penalty="r1", seed=3)
    with pytest.raises(ValueError, match="state of 3 penalties, this GAN has 1"):
        other.load_state_dict(gan.state_dict())


def test_single_penalty_checkpoints_of_the_earlier_layout_still_load(tmp_path):
    """Checkpoints written before penalty lists kept one penalty under "penalty" (state and config)."""
    g, d = _pair()
    gan = pygan.GAN(g, d, penalty=pygan.GradientPenalty("r1", weight=2.0, lazy=3), seed=3)
    gan.step(_real())
    state = gan.state_dict()
    state["penalty"] = state.pop("penalties")[0]
    state["config"] = gan._config()
    cfg = state["config"]
    pen = cfg.pop("penalties")[0]
    pen.pop("target")
    cfg["penalty"] = pen
    state["modules"] = {n: pygan.checkpoint.module_spec(m) for n, m in gan._modules().items()}
    state["extra"] = {}
    path = pygan.checkpoint.atomic_save(state, tmp_path / "old.pt")
    back = pygan.GAN.load(path)
    assert (back.penalty.kind, back.penalty.weight, back.penalty.lazy, back.penalty.calls) == ("r1", 2.0, 3, 1)


def test_penalty_option_errors():
    g, d = _pair()
    with pytest.raises(ValueError, match="unknown penalty 'r3'.*'r1\\+r2'"):
        pygan.GAN(g, d, penalty="r1+r3")
    with pytest.raises(TypeError, match="GradientPenalty or a list of them, got int in the list"):
        pygan.GAN(g, d, penalty=["r1", 3])
    p = pygan.GradientPenalty("r1")
    with pytest.raises(ValueError, match="same GradientPenalty \\(r1\\) twice"):
        pygan.GAN(g, d, penalty=[p, p])
    with pytest.raises(ValueError, match="unknown penalty target 'middle'"):
        pygan.GradientPenalty("r1", target="middle")
    assert pygan.GAN(g, d, penalty=[]).penalty is None


def test_adam_defaults_follow_every_penalty():
    from pygan.gan import adam_defaults
    assert adam_defaults("gan", "r1+wgan-gp") == (1e-4, (0.0, 0.9))
    assert adam_defaults("gan", ["r1", "r2"]) == (2e-4, (0.5, 0.999))
    assert adam_defaults("gan", None) == (2e-4, (0.5, 0.999))


# ---------------------------------------------------------------------------------------------
# Per-sample values and targets in the functional API
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("form", ["r1", "r2", "wgan_gp", "one_sided"])
def test_functional_reductions_equal_the_reference(form, reduction, backend, rng):
    name, device = backend
    torch.manual_seed(1)
    d = models.MLPDiscriminator((3,), hidden=8, depth=2).double().to(device)
    x = (torch.randn(6, 3, generator=rng, dtype=torch.float64) * 0.5).to(device).requires_grad_(True)
    out = getattr(pygan.penalties, form)(d(x), x, weight=3.0, reduction=reduction, backend=name)
    x64 = x.detach().cpu().requires_grad_(True)
    d64 = copy.deepcopy(d).cpu()
    (gx,) = torch.autograd.grad(d64(x64).sum(), x64, create_graph=True)
    head = {"r1": "squared", "r2": "squared", "wgan_gp": "two-sided", "one_sided": "one-sided"}[form]
    values, _ = ref.penalty_values(gx, head, 1.0, 1.5 if form in SQUARED else 3.0)
    expect = {"none": values, "sum": values.sum(), "mean": values.mean()}[reduction]
    assert out.shape == expect.shape
    torch.testing.assert_close(out.cpu(), expect.detach(), rtol=1e-12, atol=1e-14)
    # The parameter gradient of a weighted sum of the per-sample values (double backprop).
    w = torch.linspace(0.5, 2.0, out.numel(), dtype=torch.float64)
    # (D's last bias does not move the input gradient: its parameter gradient is zero.)
    grads = torch.autograd.grad((out.cpu().reshape(-1) * w).sum(), list(d.parameters()), materialize_grads=True)
    expect_grads = torch.autograd.grad((expect.reshape(-1) * w).sum(), list(d64.parameters()),
                                       materialize_grads=True)
    for a, b in zip(grads, expect_grads):
        torch.testing.assert_close(a.cpu(), b, rtol=1e-10, atol=1e-13)


def test_gradient_penalty_per_sample_and_targets(rng):
    torch.manual_seed(2)
    d = models.MLPDiscriminator((2,), hidden=8, depth=2).double()
    real, fake = torch.randn(5, 2, dtype=torch.float64), torch.randn(5, 2, dtype=torch.float64)
    for kind, target in (("r1", "interpolates"), ("wgan-gp", "real"), ("dragan", "fake"), ("r2", "perturbed")):
        gen = torch.Generator().manual_seed(7)
        fake_arg = fake if target in ("fake", "interpolates") else None
        out = pygan.gradient_penalty(d, real, fake_arg, kind=kind, weight=2.0, target=target,
                                     reduction="none", generator=gen)
        expect = _reference_penalty(d, (kind, target, 2.0, 1), real, fake, torch.Generator().manual_seed(7))
        assert out.shape == (5,)
        assert out.mean().item() == pytest.approx(expect.item(), rel=1e-12)
    # A lazy off-step gives per-sample zeros; a target's needs are checked by name.
    zeros = pygan.gradient_penalty(d, real, kind="r1", lazy=2, step=1, reduction="none")
    assert zeros.shape == (5,) and not zeros.any()
    with pytest.raises(ValueError, match="penalty kind 'r1' needs fake samples \\(its points: interpolates\\)"):
        pygan.gradient_penalty(d, real, kind="r1", target="interpolates")
    with pytest.raises(ValueError, match="reduction must be one of 'mean', 'sum', 'none'"):
        pygan.gradient_penalty(d, real, kind="r1", reduction="all")
    x = real.clone().requires_grad_(True)
    with pytest.raises(ValueError, match="reduction must be one of"):
        pygan.penalties.r1(d(x), x, reduction="avg")


def test_module_from_outputs_serves_any_batch_target():
    x = torch.randn(4, 2, dtype=torch.float64, requires_grad=True)
    out = (x**2).sum(1)
    p = pygan.GradientPenalty("wgan-gp", weight=1.0, target="real")
    value = p.from_outputs(out, x)
    n = (2 * x.detach()).norm(dim=1)
    assert value.item() == pytest.approx(((n - 1) ** 2).mean().item(), rel=1e-12)
    with pytest.raises(ValueError, match="'r1@interpolates' takes its own points"):
        pygan.GradientPenalty("r1", target="interpolates").from_outputs(out, x)


# ---------------------------------------------------------------------------------------------
# R3GAN end to end
# ---------------------------------------------------------------------------------------------

def test_r3gan_steps_equal_the_hand_written_objective():
    """R3GAN's configuration as GAN(...): residual networks, the relativistic pairing loss, R1 + R2
    at gamma, Adam with betas (0, 0.99), EMA. One D step and one G step equal R3GAN's objective
    written by hand in float64 (per sample softplus(-(D(x) - D(G(z)))) + gamma / 2 (R1 + R2),
    averaged), with torch's own Adam."""
    gamma, lr = 0.5, 2e-4
    torch.manual_seed(0)
    g = models.ResNetGenerator(latent_dim=6, channels=1, size=8, width=8, blocks=1, cardinality=2).double()
    d = models.ResNetDiscriminator(channels=1, size=8, width=8, blocks=1, cardinality=2).double()
    with torch.no_grad():  # leave fix-up's zero start, so the residual branches carry gradients
        for p in d.parameters():
            p.add_(0.05 * torch.randn_like(p))
    g_ref, d_ref, g_init = copy.deepcopy(g), copy.deepcopy(d), copy.deepcopy(g)
    adam = lambda ps: torch.optim.Adam(ps, lr=lr, betas=(0.0, 0.99))  # noqa: E731
    gan = pygan.GAN(g, d, loss="relativistic", ema=0.999, seed=11, g_optimizer=adam, d_optimizer=adam,
                    penalty=[pygan.GradientPenalty("r1", weight=gamma), pygan.GradientPenalty("r2", weight=gamma)])
    real = torch.rand((6, 1, 8, 8), generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 2 - 1
    d_stats = gan.d_step(real)
    gan.g_step(real)

    opt_d, opt_g = adam(d_ref.parameters()), adam(g_ref.parameters())
    gen = torch.Generator().manual_seed(11)
    x = real.clone().requires_grad_(True)
    fake = g_ref(torch.randn((6, 6), generator=gen).double()).detach().requires_grad_(True)
    real_logits, fake_logits = d_ref(x), d_ref(fake)
    (g_real,) = torch.autograd.grad(real_logits.sum(), x, create_graph=True)
    (g_fake,) = torch.autograd.grad(fake_logits.sum(), fake, create_graph=True)
    r1, r2 = g_real.square().sum((1, 2, 3)), g_fake.square().sum((1, 2, 3))
    adversarial = torch.nn.functional.softplus(-(real_logits - fake_logits)).squeeze(1)
    d_loss = (adversarial + gamma / 2 * (r1 + r2)).mean()
    opt_d.zero_grad()
    d_loss.backward()
    opt_d.step()
    fake_logits = d_ref(g_ref(torch.randn((6, 6), generator=gen).double()))
    g_loss = torch.nn.functional.softplus(-(fake_logits - d_ref(real).detach())).mean()
    opt_g.zero_grad()
    g_loss.backward()
    opt_g.step()

    assert_same_params(d, d_ref, "D", tol=1e-9)
    assert_same_params(g, g_ref, "G", tol=1e-9)
    assert (d_stats["d_loss"] + d_stats["penalty"]).item() == pytest.approx(d_loss.item(), rel=1e-12)
    assert d_stats["penalty_r1"].item() == pytest.approx((gamma / 2 * r1).mean().item(), rel=1e-12)
    # One EMA step from the initial weights, at the ramped-up decay min(0.999, (1 + t) / (10 + t)), t = 1.
    beta = 2 / 11
    for p, p0, q in zip(gan.ema.module.parameters(), g_init.parameters(), g_ref.parameters()):
        torch.testing.assert_close(p, beta * p0 + (1 - beta) * q, rtol=1e-9, atol=1e-12)


def test_the_engine_is_composed_of_players_an_objective_and_a_schedule():
    from pygan.schedule import Schedule

    g, d = _pair()
    gan = pygan.GAN(g, d, loss="hinge", penalty="r1+r2", n_critic=3, fused=True, ema=0.9, seed=0)
    assert (gan.g.module, gan.d.module) == (g, d) and gan.g.ema is gan.ema and gan.d.ema is None
    assert gan.objective.penalties == gan.penalties and gan.objective.loss == "hinge"
    assert (gan.schedule.n_critic, gan.schedule.fused) == (3, True)
    a, b, c = ((torch.zeros(1), None) for _ in range(3))
    assert Schedule(3, fused=True).phases([a, b, c]) == [("d", a), ("d", b), ("dg", c)]
    assert Schedule(2).phases([a, b]) == [("d", a), ("d", b), ("g", b)]
    bigan = pygan.BiGAN(models.MLPGenerator(3, (2,), 8, 2), models.MLPEncoder((2,), 3, 8, 2),
                        models.JointMLPDiscriminator((2,), 3, 8, 2))
    assert bigan.objective.joint and not gan.objective.joint


# ---------------------------------------------------------------------------------------------
# Extra terms of a player's loss
# ---------------------------------------------------------------------------------------------

def _drift(step):
    return step.d_real.pow(2).mean()


def _centered(step):
    return step.fake.mean(0).pow(2).sum()


@pytest.mark.parametrize("fused", [False, True], ids=["alternating", "fused"])
def test_extra_terms_equal_the_float64_reference(fused):
    """ProGAN's drift penalty on D and a term on G's samples, beside R1: each is added to its
    player's loss (in the fused step to that player's backward only) and logged under its name."""
    from pygan.objective import Term

    g, d = _pair()
    g_ref, d_ref = copy.deepcopy(g), copy.deepcopy(d)
    terms = [Term(_drift, player="discriminator", weight=0.1, name="drift"), Term(_centered, weight=0.3)]
    gan = pygan.GAN(g, d, penalty=pygan.GradientPenalty("r1", weight=2.0), terms=terms, fused=fused,
                    g_optimizer=sgd, d_optimizer=sgd, seed=4)
    real = _real()
    stats = gan.step(real)
    gen = torch.Generator().manual_seed(4)
    fake = g_ref(torch.randn((16, 3), generator=gen).double())
    x = real.clone().requires_grad_(True)
    v_r, v_f = d_ref(x), d_ref(fake.detach())
    (gx,) = torch.autograd.grad(v_r.sum(), x, create_graph=True)
    drift = 0.1 * v_r.pow(2).mean()
    l_d = pygan.discriminator_loss(v_r, v_f, "gan") + gx.pow(2).sum(1).mean() + drift
    grads_d = torch.autograd.grad(l_d, list(d_ref.parameters()))
    centers = []

    def g_loss():
        f = fake if fused else g_ref(torch.randn((16, 3), generator=gen).double())
        centers.append(0.3 * f.mean(0).pow(2).sum())
        return pygan.generator_loss(d_ref(f), "gan") + centers[0]

    reference_updates(d_ref, g_ref, grads_d, fused, g_loss)
    center = centers[0]
    assert_same_params(d, d_ref, "D")
    assert_same_params(g, g_ref, "G")
    assert stats["drift"].item() == pytest.approx(drift.item(), rel=1e-12)
    assert stats["_centered"].item() == pytest.approx(center.item(), rel=1e-12)
    assert "terms=[Term(drift, player='discriminator', weight=0.1), Term(_centered" in repr(gan)


def test_extra_terms_in_checkpoints_and_errors(tmp_path):
    from pygan.objective import Term

    g, d = _pair()
    gan = pygan.GAN(g, d, terms=[Term(_drift, player="discriminator", weight=0.1, name="drift")], seed=1)
    path = gan.save(tmp_path / "c.pt")
    with pytest.raises(ValueError, match="terms is a builtins.list .*Pass terms= yourself"):
        pygan.GAN.load(path)
    assert pygan.GAN.load(path, trusted=True).objective.terms[0].name == "drift"
    lam = pygan.GAN(*_pair(), terms=[Term(lambda s: s.fake.sum() * 0, name="zero")], seed=1)
    path = lam.save(tmp_path / "lambda.pt")  # a lambda cannot be pickled: saving still works
    with pytest.raises(ValueError, match="terms .* could not be pickled when it was saved .*pass terms= yourself"):
        pygan.GAN.load(path, trusted=True)
    assert pygan.GAN.load(path, terms=[Term(_drift, player="discriminator")]).objective.terms[0].name == "_drift"
    with pytest.raises(ValueError, match="term 'bad' must return a scalar tensor .* got shape \\(16, 1\\)"):
        pygan.GAN(*_pair(), terms=[Term(lambda s: s.d_fake, player="discriminator", name="bad")]).step(_real())
    with pytest.raises(ValueError, match="player must be one of generator, discriminator"):
        Term(_drift, player="critic")
    with pytest.raises(ValueError, match="a Term's weight must be finite, got nan"):
        Term(_drift, weight=float("nan"))
    with pytest.raises(TypeError, match="a Term's weight must be a number, got str"):
        Term(_drift, weight="1e-3")
    assert Term(_drift, weight=-2).weight == -2.0  # a term may reward as well as penalize
    with pytest.raises(ValueError, match="distinct names"):
        pygan.GAN(*_pair(), terms=[Term(_drift), Term(_drift)])
    with pytest.raises(TypeError, match="terms must be pygan.objective.Term objects, got function"):
        pygan.GAN(*_pair(), terms=[_drift])
