"""BiGAN against hand-written PyTorch: which pairs D sees on which side, each player's loss and
gradient, every engine option on pairs (exact resume and DDP are in test_gan.py), the reference
models, the inference metrics, and a short training run on a 2-D toy whose encoder must invert the
generator."""

import copy

import pytest
import torch
from torch import nn

import pygan
from pygan import metrics, models
from pygan.bigan import pack_pair, split_pair
from pygan.evaluate import evaluate_inference
from pygan.losses import LOSS_NAMES

from . import reference as ref

LR = 0.05
LATENT = 3


def _players(seed=0, dtype=torch.float64, hidden=8):
    torch.manual_seed(seed)
    g = models.MLPGenerator(latent_dim=LATENT, out_shape=(2,), hidden=hidden, depth=2).to(dtype)
    e = models.MLPEncoder((2,), LATENT, hidden=hidden, depth=2).to(dtype)
    d = models.JointMLPDiscriminator((2,), LATENT, hidden=hidden, depth=2).to(dtype)
    return g, e, d


def _bigan(g, e, d, **kw):
    kw.setdefault("g_optimizer", lambda ps: torch.optim.SGD(ps, lr=LR))
    kw.setdefault("d_optimizer", lambda ps: torch.optim.SGD(ps, lr=LR))
    kw.setdefault("seed", 123)
    return pygan.BiGAN(g, e, d, **kw)


def _noise(gen, m, dtype=torch.float64):
    return torch.randn((m, LATENT), generator=gen).to(dtype)


def _real(m=16, seed=5):
    return pygan.data.ring().sample(m, torch.Generator().manual_seed(seed)).double()


def _sgd_update(modules, grads):
    params = [p for m in modules for p in m.parameters()]
    with torch.no_grad():
        for p, g in zip(params, grads):
            p -= LR * g


def _assert_params(a, b, tol=1e-12, what=""):
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.allclose(p, q, rtol=tol, atol=tol), f"{what}: {name} differs by {(p - q).abs().max()}"


def _params(*modules):
    return [p for m in modules for p in m.parameters()]


# ---------------------------------------------------------------------------------------------
# Pairs, sides and each player's step
# ---------------------------------------------------------------------------------------------

def test_pack_and_split_are_inverse():
    x, z = torch.randn(4, 1, 3, 3), torch.randn(4, 5)
    pair = pack_pair(x, z)
    assert pair.shape == (4, 14)
    x2, z2 = split_pair(pair, (1, 3, 3))
    assert torch.equal(x2, x) and torch.equal(z2, z)
    assert pack_pair(x.half(), z).dtype == torch.float32  # promoted, never rounded down
    with pytest.raises(ValueError, match="one to one"):
        pack_pair(x, z[:3])
    with pytest.raises(ValueError, match=r"pair must have shape \(batch, 9"):
        split_pair(torch.randn(4, 9), (1, 3, 3))


class _Recording(nn.Module):
    """A joint discriminator that remembers every pair it sees."""

    def __init__(self, d):
        super().__init__()
        self.d, self.seen = d, []

    def forward(self, pair):
        self.seen.append(pair.detach().clone())
        return self.d(pair)


def test_d_step_compares_data_with_codes_against_samples_with_noise():
    """D's real side is (x, E(x)) and its fake side (G(z), z): swapping them (or pairing x with
    z, or G(z) with E(x)) fails this test."""
    g, e, d = _players()
    g_ref, e_ref, d_ref = copy.deepcopy(g), copy.deepcopy(e), copy.deepcopy(d)
    rec = _Recording(d)
    bigan = _bigan(g, e, rec)
    real = _real()
    stats = bigan.d_step(real)

    z = _noise(torch.Generator().manual_seed(123), 16)
    real_pair = torch.cat([real, e_ref(real)], 1)
    fake_pair = torch.cat([g_ref(z), z], 1)
    assert len(rec.seen) == 2
    torch.testing.assert_close(rec.seen[0], real_pair.detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(rec.seen[1], fake_pair.detach(), rtol=1e-12, atol=1e-12)

    v_r, v_f = d_ref(real_pair.detach()), d_ref(fake_pair.detach())
    loss = ref.discriminator_loss(v_r, v_f, "gan")
    swapped = ref.discriminator_loss(v_f, v_r, "gan")
    assert abs(loss.item() - swapped.item()) > 1e-6, "the test could not tell the sides apart"
    assert stats["d_loss"].item() == pytest.approx(loss.item(), rel=1e-12)
    assert stats["d_real"].item() == pytest.approx(v_r.mean().item(), rel=1e-6)
    _sgd_update([d_ref], torch.autograd.grad(loss, list(d_ref.parameters())))
    _assert_params(d, d_ref, what="D after d_step")
    _assert_params(g, g_ref, tol=0, what="G untouched by d_step")
    _assert_params(e, e_ref, tol=0, what="E untouched by d_step")


@pytest.mark.parametrize("saturating", [False, True])
def test_g_step_moves_generator_and_encoder_on_both_sides(saturating):
    """One step of G and E together on the joint loss: the real pairs depend on E, the fake pairs on
    G; D is untouched and gets no gradient."""
    g, e, d = _players()
    g_ref, e_ref, d_ref = copy.deepcopy(g), copy.deepcopy(e), copy.deepcopy(d)
    bigan = _bigan(g, e, d, saturating=saturating)
    real = _real()
    stats = bigan.g_step(real)

    z = _noise(torch.Generator().manual_seed(123), 16)
    v_r = d_ref(torch.cat([real, e_ref(real)], 1))
    v_f = d_ref(torch.cat([g_ref(z), z], 1))
    loss = ref.joint_generator_loss(v_r, v_f, "gan", saturating)
    grads = torch.autograd.grad(loss, _params(g_ref, e_ref))
    assert all(gr.abs().sum() > 0 for gr in grads), "a player got no gradient"
    _sgd_update([g_ref, e_ref], grads)
    _assert_params(g, g_ref, what="G after g_step")
    _assert_params(e, e_ref, what="E after g_step")
    _assert_params(d, d_ref, tol=0, what="D untouched by g_step")
    assert all(p.grad is None for p in d.parameters()), "g_step computed D's gradients"
    assert stats["g_loss"].item() == pytest.approx(loss.item(), rel=1e-12)
    with pytest.raises(ValueError, match="encoder player moves the real pairs"):
        bigan.g_step(batch_size=4)


@pytest.mark.parametrize("loss", LOSS_NAMES)
def test_fused_step_equals_the_simultaneous_gradient_step(loss):
    params = {"alpha": 0.5} if loss == "alpha" else {}
    g, e, d = _players()
    g_ref, e_ref, d_ref = copy.deepcopy(g), copy.deepcopy(e), copy.deepcopy(d)
    bigan = _bigan(g, e, d, loss=loss, fused=True, **params)
    real = _real()
    stats = bigan.step(real)

    z = _noise(torch.Generator().manual_seed(123), 16)
    v_r = d_ref(torch.cat([real, e_ref(real)], 1))
    v_f = d_ref(torch.cat([g_ref(z), z], 1))
    l_d = ref.discriminator_loss(v_r, v_f, loss, **params)
    l_g = ref.joint_generator_loss(v_r, v_f, loss, **params)
    grads_d = torch.autograd.grad(l_d, list(d_ref.parameters()), retain_graph=True)
    grads_g = torch.autograd.grad(l_g, _params(g_ref, e_ref))
    _sgd_update([d_ref], grads_d)
    _sgd_update([g_ref, e_ref], grads_g)
    for a, b, name in ((d, d_ref, "D"), (g, g_ref, "G"), (e, e_ref, "E")):
        _assert_params(a, b, tol=1e-11, what=f"{name} ({loss})")
    assert stats["d_loss"].item() == pytest.approx(l_d.item(), rel=1e-10, abs=1e-12)
    assert stats["g_loss"].item() == pytest.approx(l_g.item(), rel=1e-10, abs=1e-12)


def test_alternating_step_reaches_every_player():
    g, e, d = _players()
    before = [copy.deepcopy(m) for m in (g, e, d)]
    bigan = _bigan(g, e, d, n_critic=2)
    bigan.step(_real(32))
    for new, old, name in zip((g, e, d), before, "GED"):
        assert all(not torch.equal(p, q) for p, q in zip(new.parameters(), old.parameters())), \
            f"{name} has parameters the step did not move"


# ---------------------------------------------------------------------------------------------
# Every engine option on pairs
# ---------------------------------------------------------------------------------------------

OPTIONS = [
    pytest.param(dict(penalty="wgan-gp", loss="wasserstein"), id="wgan-gp"),
    pytest.param(dict(penalty="one-sided", loss="wasserstein", n_critic=2), id="one-sided-ncritic"),
    pytest.param(dict(penalty="r1", fused=True), id="r1-fused"),
    pytest.param(dict(penalty="r2", loss="hinge"), id="r2-hinge"),
    pytest.param(dict(penalty="dragan", loss="least_squares"), id="dragan-lsgan"),
    pytest.param(dict(loss="relativistic_average", fused=True), id="relativistic-average-fused"),
    pytest.param(dict(loss="relativistic"), id="relativistic"),
    pytest.param(dict(loss="wasserstein", clip=0.05), id="clip"),
    pytest.param(dict(loss="js", saturating=True), id="js-saturating"),
    pytest.param(dict(amp="bf16", penalty="r1", ema=0.9), id="bf16-ema"),
    pytest.param(dict(penalty=pygan.GradientPenalty("r1", lazy=2), ema=0.9, fused=True), id="lazy-ema-fused"),
]


@pytest.mark.parametrize("options", OPTIONS)
def test_every_engine_option_trains_pairs(options):
    g, e, d = _players(dtype=torch.float32, hidden=16)
    options = {k: (copy.deepcopy(v) if isinstance(v, pygan.GradientPenalty) else v) for k, v in options.items()}
    bigan = pygan.BiGAN(g, e, d, seed=3, **options)
    m = 16 * bigan.n_critic
    for i in range(3):
        stats = bigan.step(_real(m, seed=i).float())
        assert all(torch.isfinite(v) for v in stats.values()), stats
    if options.get("penalty") not in (None,):
        if isinstance(bigan.penalty, pygan.GradientPenalty) and bigan.penalty.last_norms is not None:
            assert bigan.penalty.last_norms.shape == (16,)  # one joint norm per pair
    if options.get("clip"):
        assert all(p.abs().max() <= 0.05 for p in d.parameters())
    x = _real(8).float()
    assert bigan.encode(x).shape == (8, LATENT) and bigan.reconstruct(x).shape == (8, 2)
    assert bigan.sample(5).shape == (5, 2)


def test_penalty_norm_runs_over_the_joint_pair():
    """R1 on the real pairs: the per-sample gradient norm is over (x, E(x)) together."""
    g, e, d = _players()
    _, e0, d0 = _players()  # the same initial weights, untouched by the step
    pen = pygan.GradientPenalty("r1", weight=2.0)
    bigan = _bigan(g, e, d, penalty=pen)
    real = _real(8)
    bigan.d_step(real)
    pair = torch.cat([real, e0(real)], 1).detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(d0(pair).sum(), pair)
    torch.testing.assert_close(pen.last_norms, grad.norm(dim=1), rtol=1e-10, atol=1e-12)
    assert (grad[:, 2:].norm(dim=1) > 0).all(), "the code part of the pair got no gradient"


def test_clear_errors(tmp_path):
    g, e, d = _players(dtype=torch.float32)
    with pytest.raises(TypeError, match="encoder must be a torch.nn.Module"):
        pygan.BiGAN(g, "encoder", d)
    wrong_code = models.MLPEncoder((2,), LATENT + 1, hidden=8)
    bigan = pygan.BiGAN(g, wrong_code, models.JointMLPDiscriminator((2,), LATENT, hidden=8))
    with pytest.raises(ValueError, match=r"encoder maps data to codes of shape \(4,\).*\(3,\)"):
        bigan.step(torch.randn(8, 2))
    bigan = pygan.BiGAN(g, e, d)
    with pytest.raises(ValueError, match=r"generator makes samples of shape \(2,\), the data has shape \(3,\)"):
        bigan.step(torch.randn(8, 3))
    gan = pygan.GAN(models.MLPGenerator(3, (2,), 8), models.MLPDiscriminator((2,), 8))
    gan.save(tmp_path / "gan.pt")
    with pytest.raises(ValueError, match="holds a GAN checkpoint; load it with GAN.load"):
        pygan.BiGAN.load(tmp_path / "gan.pt")


# ---------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------

def test_reference_models_shapes_and_penalty_through_the_conv_joint_discriminator():
    g, e, d = models.build_bigan("dcgan", (1, 8, 8), latent_dim=6, width=4)
    x = torch.randn(5, 1, 8, 8)
    assert e(x).shape == (5, 6) and g(torch.randn(5, 6)).shape == (5, 1, 8, 8)
    pair = pack_pair(x, e(x))
    assert d(pair).shape == (5, 1) and d.features(pair).shape == (5, 512)
    pen = pygan.gradient_penalty(d, pair.detach(), kind="r1")
    pen.backward()
    # Double backprop reaches every weight of both branches (biases cannot move the input gradient
    # of a piecewise-linear network: their gradient is zero).
    assert all(p.grad is not None and p.grad.abs().sum() > 0
               for name, p in d.named_parameters() if name.endswith("weight"))
    g, e, d = models.build_bigan("mlp", (1, 8, 8))
    assert g.latent_dim == e.latent_dim == d.latent_dim == 32
    assert d.features(pack_pair(x, e(x))).shape == (5, 512)
    dc = models.DCGANDiscriminator(1, 8, width=4)
    assert dc(x).shape == (5, 1) and dc.features(x).shape == (5, 4 * 16)  # one stage: 8x8 -> 4 channels of 4x4
    with pytest.raises(ValueError, match="unknown model"):
        models.build_bigan("resnet", (2,))


# ---------------------------------------------------------------------------------------------
# Inference metrics
# ---------------------------------------------------------------------------------------------

def test_latent_recovery_and_reconstruction_error_formulas():
    z = torch.randn(4000, 3, generator=torch.Generator().manual_seed(0))
    exact = metrics.latent_recovery(z, z)
    assert exact.correlation == pytest.approx(1.0) and exact.relative_error == pytest.approx(0.0, abs=1e-12)
    independent = metrics.latent_recovery(z, torch.randn(4000, 3, generator=torch.Generator().manual_seed(1)))
    assert abs(independent.correlation) < 0.05 and independent.relative_error == pytest.approx(2.0, rel=0.1)
    flipped = metrics.latent_recovery(z, -z)
    assert flipped.min_correlation == pytest.approx(-1.0)
    x = torch.randn(100, 1, 2, 2, dtype=torch.float64)
    x_hat = x + 0.1
    r = metrics.reconstruction_error(x, x_hat)
    assert r.mse == pytest.approx(0.01)
    flat = x.flatten(1)
    assert r.relative == pytest.approx(0.01 / ((flat - flat.mean(0)) ** 2).mean().item())
    with pytest.raises(ValueError, match="z and z_hat must have one shape"):
        metrics.latent_recovery(z, z[:, :2])


def test_probes_agree_with_scikit_learn():
    pytest.importorskip("sklearn")
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.preprocessing import StandardScaler

    tr, te, full = (pygan.data.digits(split=s) for s in ("train", "test", None))
    assert len(tr) + len(te) == len(full) == 1797 and len(te) == 449
    # The splits partition the data set: together they hold every image and label once.
    assert torch.equal(torch.bincount(torch.cat([tr.labels, te.labels])), torch.bincount(full.labels))
    assert torch.cat([tr.data, te.data]).double().sum(0).allclose(full.data.double().sum(0))
    xtr, xte = tr.data.flatten(1).double(), te.data.flatten(1).double()
    scaler = StandardScaler().fit(xtr.numpy())
    knn = KNeighborsClassifier(1).fit(scaler.transform(xtr.numpy()), tr.labels.numpy())
    expect_nn = (knn.predict(scaler.transform(xte.numpy())) == te.labels.numpy()).mean()
    assert metrics.nearest_neighbor(xtr, tr.labels, xte, te.labels) == pytest.approx(expect_nn, abs=1 / 449)
    lr = LogisticRegression(C=1 / (1e-3 * len(tr)), max_iter=5000).fit(scaler.transform(xtr.numpy()), tr.labels.numpy())
    expect_lin = (lr.predict(scaler.transform(xte.numpy())) == te.labels.numpy()).mean()
    ours = metrics.feature_probes(xtr, tr.labels, xte, te.labels)
    assert ours.linear == pytest.approx(expect_lin, abs=0.015)
    assert 0.1 <= ours.chance < 0.13 and ours.features == 64
    # Features that carry no class information sit at chance.
    noise = torch.randn(len(tr) + len(te), 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    blind = metrics.feature_probes(noise[:len(tr)], tr.labels, noise[len(tr):], te.labels)
    assert blind.linear < 0.2 and blind.nearest_neighbor < 0.2


def test_probe_errors():
    x, y = torch.randn(10, 3), torch.arange(10) % 2
    with pytest.raises(ValueError, match="train_y must be \\(10,\\) integer class labels"):
        metrics.linear_probe(x, y.float(), x, y)
    with pytest.raises(ValueError, match="train_x and test_x must have the same features"):
        metrics.nearest_neighbor(x, y, x[:, :2], y)
    with pytest.raises(ValueError, match="single class"):
        metrics.linear_probe(x, torch.zeros(10, dtype=torch.long), x, torch.zeros(10, dtype=torch.long))
    with pytest.raises(ValueError, match="test_x contains non-finite"):
        metrics.nearest_neighbor(x, y, torch.full((10, 3), float("nan")), y)


# ---------------------------------------------------------------------------------------------
# Training: the encoder learns to invert the generator
# ---------------------------------------------------------------------------------------------

def _bent_gaussian(n, gen):
    z = torch.randn(n, 2, generator=gen)
    return torch.stack([1.5 * z[:, 0], 0.7 * z[:, 1] + 0.3 * z[:, 0] ** 2], 1)


@pytest.mark.slow
def test_toy_bigan_encoder_inverts_the_generator():
    """A 2-D toy with a 2-D latent: after training, G(E(x)) lands near x (a small fraction of the
    data's variance) and E(G(z)) recovers z."""
    torch.manual_seed(0)
    g, e, d = models.build_bigan("mlp", (2,), latent_dim=2, width=64)
    opt = lambda ps: torch.optim.Adam(ps, lr=1e-3, betas=(0.5, 0.999))  # noqa: E731
    bigan = pygan.BiGAN(g, e, d, penalty="r1", seed=0, g_optimizer=opt, d_optimizer=opt)
    gen = torch.Generator().manual_seed(1)
    bigan.fit(_bent_gaussian(20000, gen), 1500, batch_size=256, progress=False)
    x = _bent_gaussian(2000, gen)
    report = evaluate_inference(bigan, x, latent_samples=2000)
    assert report["reconstruction"]["relative"] < 0.1, report
    assert report["latent_recovery"]["min_correlation"] > 0.9, report
    # Against the pairing that ignores x (a shuffled reconstruction): far worse.
    shuffled = metrics.reconstruction_error(x, bigan.reconstruct(x)[torch.randperm(2000, generator=gen)])
    assert shuffled.relative > 1.0


@pytest.mark.gpu
@pytest.mark.parametrize("fused", [False, True])
def test_captured_bigan_steps_on_cuda(fused):
    torch.manual_seed(0)
    g, e, d = (m.cuda() for m in models.build_bigan("mlp", (2,), latent_dim=2, width=32))
    bigan = pygan.BiGAN(g, e, d, capture=True, fused=fused, amp="bf16", n_critic=2, seed=1, ema=0.9,
                        penalty=pygan.GradientPenalty("r1", weight=1.0, lazy=4))
    data = pygan.data.ring(device="cuda")
    for i in range(8):
        stats = bigan.step(data.sample(128, torch.Generator("cuda").manual_seed(i)))
        assert all(torch.isfinite(v) for v in stats.values())
    assert len(bigan._graphs) == 2
    assert bigan.encode(data.sample(16)).shape == (16, 2)
