"""Class-conditional GANs: conditional generators and projection discriminators by their formulas,
the engine's steps with labels against a float64 reference, sampling by class, labelled data,
checkpoints, the evaluation metrics against brute force, and the errors."""

import copy

import pytest
import torch
import torch.nn.functional as F

import pygan
from pygan import metrics, models
from pygan.evaluate import evaluate_conditional

from .conftest import assert_same_params, reference_updates, sgd, sgd_update

K = 3


def _players(seed=0, dtype=torch.float64):
    torch.manual_seed(seed)
    g = models.MLPGenerator(latent_dim=3, out_shape=(2,), hidden=8, depth=2, num_classes=K).to(dtype)
    d = models.MLPDiscriminator((2,), hidden=8, depth=2, num_classes=K).to(dtype)
    return g, d




def _batch(m=12, seed=5):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn((m, 2), generator=gen, dtype=torch.float64), torch.randint(K, (m,), generator=gen)


# ---------------------------------------------------------------------------------------------
# The networks
# ---------------------------------------------------------------------------------------------

def test_projection_discriminator_and_embedding_generator_formulas():
    g, d = _players()
    z, (x, y) = torch.randn(12, 3, dtype=torch.float64), _batch()
    # D(x, y) = psi(phi(x)) + <e_y, phi(x)>
    phi = d.features(x)
    expect = d.net[-1](phi) + (d.projection.embed.weight[y] * phi).sum(1, keepdim=True)
    torch.testing.assert_close(d(x, y=y), expect, rtol=0, atol=0)
    # G(z, y) = net([z, e_y])
    torch.testing.assert_close(g(z, y=y), g.net(torch.cat([z, g.embed.weight[y]], 1)).view(12, 2), rtol=0, atol=0)
    # Different classes give different outputs for the same input.
    assert not torch.equal(d(x, y=y), d(x, y=(y + 1) % K))


def test_dcgan_conditional_batch_norm_and_projection():
    torch.manual_seed(0)
    g = models.DCGANGenerator(latent_dim=4, channels=1, size=8, width=4, num_classes=K).double()
    d = models.DCGANDiscriminator(channels=1, size=8, width=4, num_classes=K).double()
    z, y = torch.randn(6, 4, dtype=torch.float64), torch.tensor([0, 1, 2, 0, 1, 2])
    x = g(z, y=y)
    assert x.shape == (6, 1, 8, 8) and d(x, y=y).shape == (6, 1)
    cbn = next(m for m in g.modules() if isinstance(m, models.ConditionalBatchNorm2d))
    with torch.no_grad():
        cbn.scale.weight.uniform_(0.5, 1.5)
        cbn.shift.weight.normal_()
    h = torch.randn(6, cbn.norm.num_features, 2, 2, dtype=torch.float64)
    expect = cbn.scale.weight[y][:, :, None, None] * F.batch_norm(h, None, None, training=True) \
        + cbn.shift.weight[y][:, :, None, None]
    torch.testing.assert_close(cbn(h, y), expect)
    body = d.body(x)
    expect = d.head(body).view(6, 1) + (d.projection.embed.weight[y] * body.flatten(1)).sum(1, keepdim=True)
    torch.testing.assert_close(d(x, y=y), expect)


def test_network_label_errors():
    g, d = _players()
    x, y = _batch()
    with pytest.raises(ValueError, match=r"class-conditional \(num_classes=3\): pass the labels, y="):
        d(x)
    with pytest.raises(ValueError, match=r"y must be integer class labels of shape \(12,\), got torch.float32"):
        d(x, y=y.float())
    with pytest.raises(ValueError, match="is not class-conditional"):
        models.MLPDiscriminator((2,))(x.float(), y=y)
    with pytest.raises(ValueError, match="num_classes must be an int of at least 2"):
        models.MLPGenerator(num_classes=1)
    with pytest.raises(ValueError, match="'resnet' is not class-conditional"):
        models.build("resnet", (1, 8, 8), num_classes=10)
    g, d = models.build("mlp", (2,), num_classes=4)
    assert g.num_classes == d.num_classes == 4


# ---------------------------------------------------------------------------------------------
# The engine
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fused", [False, True], ids=["alternating", "fused"])
@pytest.mark.parametrize("loss,penalty", [("gan", None), ("relativistic", "r1+r2"), ("wasserstein", "wgan-gp")])
def test_steps_with_labels_equal_the_reference(loss, penalty, fused):
    """The fakes of a step carry the real batch's labels; D and G take them by keyword, and so do
    the penalties' own forwards (WGAN-GP's interpolates keep their pair's label)."""
    g, d = _players()
    g_ref, d_ref = copy.deepcopy(g), copy.deepcopy(d)
    gan = pygan.GAN(g, d, loss=loss, penalty=penalty, fused=fused, g_optimizer=sgd, d_optimizer=sgd, seed=7)
    assert gan.num_classes == K
    x, y = _batch()
    gan.step(x, labels=y)

    gen = torch.Generator().manual_seed(7)
    fake = g_ref(torch.randn((12, 3), generator=gen).double(), y=y)
    xr, xf = x.clone().requires_grad_(True), fake.detach().requires_grad_(True)
    v_r, v_f = d_ref(xr, y=y), d_ref(xf, y=y)
    l_d = pygan.discriminator_loss(v_r, v_f, loss)
    if penalty == "r1+r2":
        for v, inp in ((v_r, xr), (v_f, xf)):
            (gx,) = torch.autograd.grad(v.sum(), inp, create_graph=True)
            l_d = l_d + 5.0 * gx.pow(2).sum(1).mean()
    elif penalty == "wgan-gp":
        eps = torch.rand((12,), generator=gen).double()[:, None]
        pts = (fake.detach() + eps * (x - fake.detach())).requires_grad_(True)
        (gx,) = torch.autograd.grad(d_ref(pts, y=y).sum(), pts, create_graph=True)
        l_d = l_d + 10.0 * (gx.norm(dim=1) - 1).pow(2).mean()
    grads_d = torch.autograd.grad(l_d, list(d_ref.parameters()), allow_unused=True, materialize_grads=True)

    def g_loss():  # fused: the same fakes and real logits; alternating: fresh fakes against the moved D
        if fused:
            return pygan.generator_loss(d_ref(fake, y=y), loss, real_logits=v_r.detach())
        new = g_ref(torch.randn((12, 3), generator=gen).double(), y=y)
        return pygan.generator_loss(d_ref(new, y=y), loss, real_logits=d_ref(x, y=y).detach())

    reference_updates(d_ref, g_ref, grads_d, fused, g_loss)
    assert_same_params(d, d_ref, "D")
    assert_same_params(g, g_ref, "G")


def test_g_step_without_real_draws_uniform_labels():
    g, d = _players()
    g_ref, d_ref = copy.deepcopy(g), copy.deepcopy(d)
    gan = pygan.GAN(g, d, g_optimizer=sgd, d_optimizer=sgd, seed=3)
    gan.g_step(batch_size=10)
    gen = torch.Generator().manual_seed(3)
    y = torch.randint(K, (10,), generator=gen)  # the labels first, then the noise
    fake = g_ref(torch.randn((10, 3), generator=gen).double(), y=y)
    sgd_update(g_ref, torch.autograd.grad(pygan.generator_loss(d_ref(fake, y=y), "gan"), list(g_ref.parameters())))
    assert_same_params(g, g_ref, "G")


def test_sampling_by_class_fit_and_checkpoints(tmp_path):
    g, d = _players(dtype=torch.float32)
    gan = pygan.GAN(g, d, seed=1)
    x = torch.randn(90, 2) + torch.arange(3).repeat_interleave(30)[:, None] * 4.0
    y = torch.arange(3).repeat_interleave(30)
    gan.fit((x, y), 4, batch_size=16, progress=False)
    assert gan.sample(5, labels=2).shape == (5, 2)
    gen = torch.Generator().manual_seed(0)
    a = gan.sample(6, labels=torch.tensor([0, 1, 2, 0, 1, 2]), generator=gen)
    assert a.shape == (6, 2)
    # Without labels the classes are drawn after the noise, with the same generator.
    gen = torch.Generator().manual_seed(4)
    z = gan.prior(6, gan.device, gen)
    labels = torch.randint(K, (6,), generator=gen)
    torch.testing.assert_close(gan.sample(6, generator=torch.Generator().manual_seed(4)), gan.generate(z, labels=labels))
    path = gan.save(tmp_path / "c.pt")
    back = pygan.GAN.load(path)
    assert back.num_classes == K
    torch.testing.assert_close(back.sample(4, labels=1, generator=torch.Generator().manual_seed(2)),
                               gan.sample(4, labels=1, generator=torch.Generator().manual_seed(2)))


def test_engine_label_errors():
    g, d = _players(dtype=torch.float32)
    gan = pygan.GAN(g, d, seed=1)
    x, y = torch.randn(8, 2), torch.randint(K, (8,))
    with pytest.raises(ValueError, match=r"class-conditional \(num_classes=3\): pass the real batch's integer class "
                                         "labels, labels="):
        gan.step(x)
    with pytest.raises(ValueError, match=r"labels must be integer class labels of shape \(8,\)"):
        gan.d_step(x, labels=y[:4])
    with pytest.raises(ValueError, match="labels must be classes 0..2, got 0..5"):
        gan.sample(3, labels=torch.tensor([0, 5, 1]))
    with pytest.raises(ValueError, match="has no labels; class-conditional training needs labelled data"):
        gan.fit(torch.randn(20, 2), 1, batch_size=4, progress=False)
    with pytest.raises(ValueError, match="the data has labels 0..4 and the GAN num_classes=3"):
        gan.fit((torch.randn(20, 2), torch.arange(20) % 5), 1, batch_size=4, progress=False)
    with pytest.raises(ValueError, match="pass the labels as a list too"):
        pygan.GAN(*_players(dtype=torch.float32), n_critic=2).step([x, x], labels=y)
    plain = pygan.GAN(*pygan.models.build("mlp", (2,), width=8))
    with pytest.raises(ValueError, match="not class-conditional"):
        plain.step(x, labels=y)
    with pytest.raises(ValueError, match="discriminator has num_classes=None and the GAN 3"):
        pygan.GAN(g, models.MLPDiscriminator((2,), hidden=8))
    with pytest.raises(ValueError, match="BiGAN is not class-conditional"):
        pygan.BiGAN(g, models.MLPEncoder((2,), 3), models.JointMLPDiscriminator((2,), 3))
    with pytest.raises(ValueError, match="labels must be integer class labels, one per sample"):
        pygan.data.TensorSampler(torch.randn(4, 2), labels=torch.rand(4))


# ---------------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------------

def test_knn_coverage_equals_brute_force(rng):
    for trial in range(3):
        real = torch.randn(30, 3, generator=rng, dtype=torch.float64)
        fake = torch.randn(20, 3, generator=rng, dtype=torch.float64) * 0.5 + 0.3 * trial
        k = 4
        hits = 0
        for i in range(30):
            d_real = sorted(float((real[i] - real[j]).norm()) for j in range(30) if j != i)
            radius = d_real[k - 1]
            hits += any(float((real[i] - f).norm()) < radius for f in fake)
        assert metrics.knn_coverage(real, fake, k=k) == pytest.approx(hits / 30)
    assert metrics.knn_coverage(real, real + 1e-9) == 1.0
    assert metrics.knn_coverage(real, real + 100.0) == 0.0
    with pytest.raises(ValueError, match="k must be an int in"):
        metrics.knn_coverage(real, fake, k=30)


def test_class_accuracy_of_real_held_out_samples_is_the_ceiling(rng):
    # Centers 6 standard deviations apart: the best classifier errs on about 0.3% of the samples,
    # so 0.85 of 150 is never missed by chance (at 3 apart the Bayes accuracy was 0.90, 2 standard
    # errors of 150 samples above the bar, and a fresh seed fell under it).
    centers = torch.tensor([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]], dtype=torch.float64)
    def draw(n):
        y = torch.randint(3, (n,), generator=rng)
        return centers[y] + torch.randn(n, 2, generator=rng, dtype=torch.float64), y
    (tr, ytr), (te, yte) = draw(300), draw(150)
    result = metrics.class_accuracy(tr, ytr, te, yte, te, yte)
    assert result.accuracy == pytest.approx(result.real_accuracy) and result.real_accuracy > 0.85
    wrong = metrics.class_accuracy(tr, ytr, te, yte, te, (yte + 1) % 3)
    assert wrong.accuracy < 0.15 and len(wrong.per_class) == 3
    with pytest.raises(ValueError, match="must name the classes 0..K-1"):
        metrics.class_accuracy(tr, ytr + 1, te, yte + 1, te, yte)


def test_evaluate_conditional_reports_against_its_baselines():
    digits = pygan.data.digits(split="train")
    test = pygan.data.digits(split="test")
    g, d = models.build("mlp", digits.shape, width=16, num_classes=10)
    gan = pygan.GAN(g, d, seed=0)
    out = evaluate_conditional(gan, digits.data, digits.labels, test.data, test.labels)
    assert len(out["per_class_accuracy"]) == len(out["per_class_coverage"]) == 10
    assert out["real_accuracy"] > 0.9 and out["real_coverage"] > 0.5
    assert 0 <= out["accuracy"] <= 1 and 0 <= out["coverage"] < out["real_coverage"]
