r"""A piecewise-linear MLP critic's forward for one training step, with its input gradient and the
R1/R2 double backward in closed form (composite op: torch's matrix products and LeakyReLU
derivative, no kernel of its own).

The MLP is :math:`h_l = a_{l-1} W_l^T + b_l`, :math:`a_l = \mathrm{leaky}(h_l)` for
:math:`l < L`, :math:`v = h_L` (one logit), :math:`a_0 = x`. LeakyReLU is piecewise linear, so
with the slopes :math:`s_l = \mathrm{leaky}'(h_l)` fixed by the forward, D is linear in every
layer's input and

.. math::
    q_L = 1, \qquad q_l = \partial v / \partial h_l = s_l \odot (q_{l+1} W_{l+1}), \qquad
    g = \nabla_x v = q_1 W_1 .

Computing :math:`q` in the forward (what a backward would propagate anyway) gives three things
from one pass per batch:

- the loss's backward: for an upstream :math:`c_i = \partial L / \partial v_i` the error at layer
  :math:`l` is :math:`c \odot q_l`, so :math:`\partial L / \partial W_l = q_l^T (c \odot a_{l-1})`;
- the input gradient :math:`g` for R1/R2, without a create-graph backward;
- the penalty's double backward. For an upstream :math:`G = \partial P / \partial g` (the
  penalty head's, :math:`\gamma g / m` for R1) the tangent :math:`t_0 = G`,
  :math:`t_l = s_l \odot (t_{l-1} W_l^T)` gives :math:`\partial P / \partial W_l = q_l^T t_{l-1}`
  (:math:`s_l` is constant a.e., so P does not depend on x or the biases). The loss's and the
  penalty's weight gradients share the left factor:
  :math:`\partial (L + P) / \partial W_l = q_l^T (c \odot a_{l-1} + t_{l-1})`, one product.

Against autograd's double backward (forward, create-graph backward, then the backward of both
graphs) the real batch's step does 4 matrix products per hidden layer instead of 6.

The op returns D's logits twice: ``for_d`` carries gradient to the weights only (D's loss: the
input is taken as fixed), ``for_g`` to the input only (G's loss: D is fixed). A step feeds each
player's upstream to its own output, so G's backward never forms D's weight gradients and D's never
forms the input's; one forward serves both (the fused step). The backward is once differentiable:
the step needs no higher derivative (the penalty's second order is in closed form above).
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor

_leaky_grad = torch.ops.aten.leaky_relu_backward


# Matrix products with a narrow side (the 2-d inputs of the toy data sets) are several times slower
# in one layout than in the transposed one on CPU BLAS; these pick the faster (same numbers).
def _mm(a: Tensor, b: Tensor) -> Tensor:
    """a @ b; b (k, n) with a small n as (b^T a^T)^T."""
    return b.t().mm(a.t()).t() if b.shape[1] < 8 else a.mm(b)


def _mm_tn(a: Tensor, b: Tensor) -> Tensor:
    """a^T @ b (a weight gradient); as (b^T a)^T when b is the narrower."""
    return b.t().mm(a).t() if b.shape[1] < a.shape[1] else a.t().mm(b)


class MLPStep(torch.autograd.Function):
    """(for_d, for_g, g) for x of shape (batch, features); params W_1, b_1, ..., W_L, b_L (a bias
    may be None). Once differentiable (see the module docs)."""

    @staticmethod
    def forward(ctx, x: Tensor, slope: float, *params: Optional[Tensor]):
        weights, biases = params[0::2], params[1::2]
        depth = len(weights) - 1  # hidden layers
        # With a positive slope a_l > 0 exactly where h_l > 0, so the activations carry the slopes
        # and the pre-activations are overwritten in place; otherwise both are kept.
        in_place = slope > 0
        acts, pre = [x], []
        a = x
        for w, b in zip(weights[:-1], biases[:-1]):
            h = a.mm(w.t()) if b is None else torch.addmm(b, a, w.t())
            a = torch.nn.functional.leaky_relu_(h, slope) if in_place else torch.nn.functional.leaky_relu(h, slope)
            pre.append(a if in_place else h)
            acts.append(a)
        w_out, b_out = weights[-1], biases[-1]
        v = a.mm(w_out.t()) if b_out is None else torch.addmm(b_out, a, w_out.t())
        q = w_out.expand(x.shape[0], -1)  # q_L W_L: the last layer's weight row, per sample
        qs: list[Tensor] = [None] * depth  # type: ignore[list-item]
        for l in range(depth - 1, -1, -1):
            q = _leaky_grad(q, pre[l], slope, in_place)
            qs[l] = q
            q = _mm(q, weights[l])
        g = q.contiguous() if depth == 0 else q  # depth 0: the expanded weight row
        ctx.slope, ctx.depth, ctx.in_place = slope, depth, in_place
        ctx.has_bias = [b is not None for b in biases]
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(g, *acts, *([] if in_place else pre), *qs, *weights)
        return v, v.clone(), g

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, c_d: Optional[Tensor], c_g: Optional[Tensor], g_up: Optional[Tensor]):
        depth, slope = ctx.depth, ctx.slope
        saved = ctx.saved_tensors
        g, acts, rest = saved[0], saved[1:depth + 2], saved[depth + 2:]
        if ctx.in_place:  # the slopes from the activations a_1 .. a_L-1
            pre = acts[1:]
        else:
            pre, rest = rest[:depth], rest[depth:]
        qs, weights = rest[:depth], rest[depth:]
        needs = ctx.needs_input_grad
        dx = g * c_g if needs[0] and c_g is not None else None
        grads: list[Optional[Tensor]] = [None] * (2 * depth + 2)
        if (c_d is not None or g_up is not None) and any(needs[2:]):
            ts: Sequence[Optional[Tensor]] = [None] * (depth + 1)
            if g_up is not None:  # the penalty's tangent, forward through the layers
                t = g_up
                ts = [t]
                for l in range(depth):
                    t = _leaky_grad(t.mm(weights[l].t()), pre[l], slope, ctx.in_place)
                    ts.append(t)
            for l in range(depth + 1):
                # D's weight gradient: q_l^T (c a_{l-1} + t_{l-1}); q_L = 1.
                if c_d is None:
                    right = ts[l]
                else:
                    right = acts[l] * c_d if ts[l] is None else torch.addcmul(ts[l], acts[l], c_d)
                if needs[2 + 2 * l]:
                    grads[2 * l] = right.sum(0, keepdim=True) if l == depth else _mm_tn(qs[l], right)
                if needs[3 + 2 * l] and ctx.has_bias[l] and c_d is not None:
                    grads[2 * l + 1] = c_d.sum(0) if l == depth else qs[l].t().mv(c_d.view(-1))
        return (dx, None, *grads)


def mlp_step(x: Tensor, weights: Sequence[Tensor], biases: Sequence[Optional[Tensor]],
             slope: float) -> tuple[Tensor, Tensor, Tensor]:
    """(for_d, for_g, g): the logits of ``x`` (batch, features) under the MLP ``weights``/``biases``
    with LeakyReLU(``slope``) between layers and one output, twice (see the module docs), and
    :math:`g = \\nabla_x v` per sample, shape of ``x``."""
    params = [t for pair in zip(weights, biases) for t in pair]
    return MLPStep.apply(x, slope, *params)
