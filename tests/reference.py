"""Float64 references: the oracle, written with plain PyTorch ops (losses from pygan._ops.loss_terms' table,
penalties and MMD from their definitions), independent of every kernel."""

import torch

from pygan._ops.loss_terms import loss_spec, reference_term


def _reduce(real_terms, fake_terms, reduction):
    if reduction == "none":
        return real_terms, fake_terms
    op = torch.mean if reduction == "mean" else torch.sum
    return sum(op(t) for t in (real_terms, fake_terms) if t is not None)


def discriminator_loss(real, fake, loss, reduction="mean", **params):
    spec = loss_spec(loss, params)
    real, fake = real.double(), fake.double()
    t = lambda name, u: reference_term(name, u, spec.alpha)  # noqa: E731
    if spec.kind == "relativistic":
        return _reduce(t(spec.real, real - fake), None, reduction)
    if spec.kind == "relativistic_average":
        return _reduce(t(spec.real, real - fake.mean()), t(spec.fake, fake - real.mean()), reduction)
    return _reduce(t(spec.real, real), t(spec.fake, fake), reduction)


def generator_loss(fake, loss, saturating=False, real=None, reduction="mean", **params):
    spec = loss_spec(loss, params)
    fake = fake.double()
    t = lambda name, u: reference_term(name, u, spec.alpha)  # noqa: E731
    if spec.kind.startswith("relativistic"):
        real = real.double()
        if saturating:
            out = discriminator_loss(real, fake, loss, reduction, **params)
            if reduction != "none":
                return -out
            if spec.kind == "relativistic":  # G's per-pair terms, in G's field
                return None, -out[0]
            return tuple(None if x is None else -x for x in out)
        if spec.kind == "relativistic":
            return _reduce(None, t(spec.gen, fake - real), reduction)
        return _reduce(t(spec.fake, real - fake.mean()), t(spec.gen, fake - real.mean()), reduction)
    term = -t(spec.fake, fake) if saturating else t(spec.gen, fake)
    return _reduce(None, term, reduction)


def joint_generator_loss(real, fake, loss, saturating=False, reduction="mean", **params):
    """A generator player that moves both sides (BiGAN): the minimax -L_D, or D's loss with the
    samples' roles swapped (hinge: the Wasserstein terms -v_f + v_r)."""
    spec = loss_spec(loss, params)
    if spec.kind.startswith("relativistic"):
        return generator_loss(fake, loss, saturating, real, reduction, **params)
    if saturating:
        out = discriminator_loss(real, fake, loss, "none", **params)
        return _reduce(-out[0], -out[1], reduction)
    if loss == "hinge":
        return _reduce(real.double(), -fake.double(), reduction)
    on_fake, on_real = discriminator_loss(fake, real, loss, "none", **params)
    return _reduce(on_real, on_fake, reduction)


def penalty_values(g, head, center=1.0, weight=1.0):
    """Float64 per-sample penalties ``weight * phi(||g_i||)`` and the norms, the norm over every
    non-batch dimension (the penalty head's oracle)."""
    n = g.double().flatten(1).norm(dim=1)
    if head == "squared":
        phi = n**2
    elif head == "one-sided":
        phi = torch.clamp(n - center, min=0) ** 2
    else:
        phi = (n - center) ** 2
    return weight * phi, n


def penalty_head(g, head, center=1.0, weight=1.0):
    """Float64 ``weight * mean_i phi(||g_i||)`` and the per-sample norms."""
    values, n = penalty_values(g, head, center, weight)
    return values.mean(), n


def gradient_penalty(discriminator, points, head, center=1.0, weight=10.0):
    """The penalty as public code writes it: autograd.grad(create_graph=True), per-sample norm."""
    points = points.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(discriminator(points).sum(), points, create_graph=True)
    return penalty_head(g, head, center, weight)[0]


def kernel_matrix(a, b, kernel, bandwidth=1.0, degree=3, gamma=None, coef0=1.0):
    """The full kernel matrix in float64, straight from the definitions (pygan.metrics.kernel)."""
    a, b = a.double(), b.double()
    if kernel == "polynomial":
        gamma = 1.0 / a.shape[1] if gamma is None else gamma
        return (gamma * a @ b.T + coef0) ** degree
    dist2 = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
    if kernel == "gaussian":
        return torch.exp(-dist2 / (2 * bandwidth**2))
    if kernel == "laplace":
        return torch.exp(-dist2.sqrt() / bandwidth)
    if kernel == "imq":
        return 1 / torch.sqrt(1 + dist2 / bandwidth**2)
    raise ValueError(kernel)


def mmd2(x, y, kernel="gaussian", bandwidth=1.0, unbiased=True, **params):
    """The O(n^2) MMD^2 estimate in float64: U-statistic (diagonals dropped) or V-statistic."""
    kxx = kernel_matrix(x, x, kernel, bandwidth, **params)
    kyy = kernel_matrix(y, y, kernel, bandwidth, **params)
    kxy = kernel_matrix(x, y, kernel, bandwidth, **params)
    n, m = x.shape[0], y.shape[0]
    if unbiased:
        return ((kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
                + (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1)) - 2 * kxy.mean())
    return kxx.mean() + kyy.mean() - 2 * kxy.mean()
