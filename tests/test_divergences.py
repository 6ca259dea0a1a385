"""The f-divergence table: every entry against its definition, and the fused terms against it."""

import math

import pytest
import torch

from pygan import divergences
from pygan._ops.loss_terms import LOSS_NAMES, loss_spec, reference_term

ENTRIES = [(n, None) for n in divergences.NAMES if n != "alpha"] + [("alpha", a) for a in (-1.0, 0.5, 2.0, 3.5)]
IDS = [n if a is None else f"alpha={a}" for n, a in ENTRIES]


def _div(name, alpha):
    return divergences.divergence(name, **({} if alpha is None else {"alpha": alpha}))


@pytest.mark.parametrize("name,alpha", ENTRIES, ids=IDS)
def test_generator_is_zero_at_one_and_convex(name, alpha):
    d = _div(name, alpha)
    # f-GAN's "gan" generator is shifted: f(1) = -log 4, hence D_f = 2 JSD - log 4.
    at_one = -math.log(4) if name == "gan" else 0.0
    assert abs(d.f(torch.tensor(1.0, dtype=torch.float64)).item() - at_one) < 1e-15
    u = torch.linspace(0.05, 8.0, 2001, dtype=torch.float64)
    second = d.f(u[2:]) - 2 * d.f(u[1:-1]) + d.f(u[:-2])
    assert (second >= -1e-12).all()


@pytest.mark.parametrize("name,alpha", ENTRIES, ids=IDS)
def test_conjugate_is_the_supremum(name, alpha):
    """f*(t) = sup_u (u t - f(u)), checked by brute force over a fine grid of u."""
    d = _div(name, alpha)
    u = torch.logspace(-6, 4, 400_001, dtype=torch.float64)
    v = torch.linspace(-2.0, 2.0, 9, dtype=torch.float64)
    t = d.activation(v)  # points inside dom f*
    assert d.in_domain(t).all()
    brute = (u[None, :] * t[:, None] - d.f(u)[None, :]).max(dim=1).values
    torch.testing.assert_close(d.f_conj(t), brute, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name,alpha", ENTRIES, ids=IDS)
def test_optimal_logit_inverts_the_activation(name, alpha):
    d = _div(name, alpha)
    ratio = torch.logspace(-2, 2, 41, dtype=torch.float64)
    if name == "total_variation":
        ratio = ratio[ratio != 1.0]
        v = divergences.optimal_logit(name, ratio)
        assert torch.isinf(v).all()
        return
    v = divergences.optimal_logit(name, ratio, **({} if alpha is None else {"alpha": alpha}))
    torch.testing.assert_close(d.activation(v), d.f_prime(ratio), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name,alpha", ENTRIES, ids=IDS)
def test_fused_terms_equal_the_table(name, alpha):
    """The loss terms are -g_f(v) (real, and non-saturating G) and f*(g_f(v)) (fake), in float64,
    where the composition is itself accurate; the kernels are tested against these terms."""
    d = _div(name, alpha)
    spec = loss_spec(name, {} if alpha is None else {"alpha": alpha})
    v = torch.linspace(-6.0, 6.0, 241, dtype=torch.float64)
    t = d.activation(v)
    torch.testing.assert_close(reference_term(spec.real, v, spec.alpha), -t, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(reference_term(spec.gen, v, spec.alpha), -t, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(reference_term(spec.fake, v, spec.alpha), d.f_conj(t), rtol=1e-9, atol=1e-9)


def test_wright_omega_matches_scipy_lambertw():
    special = pytest.importorskip("scipy.special")
    y = torch.cat([torch.linspace(-30, 30, 2001), torch.tensor([-700.0, 300.0, 1e4])]).double()
    ours = divergences.lambert_w_exp(y)
    ref = torch.tensor(special.lambertw(torch.exp(torch.clamp(y, max=700)).numpy()).real)
    mask = y < 700
    torch.testing.assert_close(ours[mask], ref[mask], rtol=1e-13, atol=0.0)
    # Defining equation where e^y overflows: W + log W = y.
    w = ours[-1]
    assert abs((w + torch.log(w) - y[-1]).item()) < 1e-10


def test_exact_divergence_and_jsd_identity():
    p = torch.tensor([0.2, 0.5, 0.3], dtype=torch.float64)
    q = torch.tensor([0.4, 0.4, 0.2], dtype=torch.float64)
    kl = (p * torch.log(p / q)).sum()
    torch.testing.assert_close(divergences.exact("kl", p, q), kl)
    m = (p + q) / 2
    jsd = 0.5 * (p * torch.log(p / m)).sum() + 0.5 * (q * torch.log(q / m)).sum()
    torch.testing.assert_close(divergences.exact("js", p, q), 2 * jsd)
    torch.testing.assert_close(divergences.exact("gan", p, q), 2 * jsd - math.log(4))
    torch.testing.assert_close(divergences.exact("total_variation", p, q), 0.5 * (p - q).abs().sum())


def test_unknown_names_and_parameters():
    with pytest.raises(ValueError, match="valid names: kl"):
        divergences.divergence("kld")
    with pytest.raises(ValueError, match="needs its parameter"):
        divergences.divergence("alpha")
    with pytest.raises(ValueError, match="other than 0 and 1"):
        divergences.divergence("alpha", alpha=1.0)
    with pytest.raises(ValueError, match="only the 'alpha'"):
        divergences.divergence("kl", alpha=0.5)
    assert set(divergences.NAMES) <= set(LOSS_NAMES)
