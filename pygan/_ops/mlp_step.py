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
from one pass (over every batch of the step at once, their rows stacked):

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


def _rows(ups: Sequence[Optional[Tensor]], sizes: Sequence[int], x: Tensor) -> tuple[Optional[Tensor], int, int]:
    """The input-gradient upstreams of some of the stacked batches as one block of rows: (block,
    first row, end row) over the smallest run of batches that holds every given one, zeros for a
    batch without one inside the run; (None, 0, 0) without any."""
    given = [i for i, u in enumerate(ups) if u is not None]
    if not given:
        return None, 0, 0
    lo, hi = given[0], given[-1] + 1
    block = [ups[i] if ups[i] is not None else x.new_zeros(sizes[i], x.shape[1]) for i in range(lo, hi)]
    return (block[0] if len(block) == 1 else torch.cat(block)), sum(sizes[:lo]), sum(sizes[:hi])


class MLPStep(torch.autograd.Function):
    """For batches x_1 .. x_k (each (batch, features)) and params W_1, b_1, ..., W_L, b_L (a bias
    may be None): (for_d, for_g, g) of each batch, in one pass over the batches stacked. Once
    differentiable (see the module docs)."""

    @staticmethod
    def forward(ctx, slope: float, n_x: int, *tensors: Optional[Tensor]):
        xs, params = tensors[:n_x], tensors[n_x:]
        weights, biases = params[0::2], params[1::2]
        depth = len(weights) - 1  # hidden layers
        sizes = [x.shape[0] for x in xs]
        # One pass over every batch: each layer's product and activation once, on all rows.
        x = xs[0] if n_x == 1 else torch.cat(xs)
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
            if l > 0:
                q = _mm(q, weights[l])
        # Each batch's input gradient g = q_1 W_1 on its own rows (a product per batch: no copy).
        rows = q.split(sizes)
        gs = [r.contiguous() if depth == 0 else _mm(r, weights[0]) for r in rows]
        ctx.slope, ctx.depth, ctx.in_place, ctx.sizes = slope, depth, in_place, sizes
        ctx.has_bias = [b is not None for b in biases]
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(*gs, *acts, *([] if in_place else pre), *qs, *weights)
        # Each batch's logits twice (see the module docs); copies, so that no output is a view.
        vs = [u.clone() for u in v.split(sizes)] if n_x > 1 else [v]
        return tuple(t for u, g in zip(vs, gs) for t in (u, u.clone(), g))

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, *ups: Optional[Tensor]):
        depth, slope, sizes = ctx.depth, ctx.slope, ctx.sizes
        n_x = len(sizes)
        saved = ctx.saved_tensors
        gs, acts, rest = saved[:n_x], saved[n_x:n_x + depth + 1], saved[n_x + depth + 1:]
        if ctx.in_place:  # the slopes from the activations a_1 .. a_L-1
            pre = acts[1:]
        else:
            pre, rest = rest[:depth], rest[depth:]
        qs, weights = rest[:depth], rest[depth:]
        needs = ctx.needs_input_grad
        c_ds, c_gs, g_ups = ups[0::3], ups[1::3], ups[2::3]
        dxs = [g * c if needs[2 + i] and c is not None else None for i, (g, c) in enumerate(zip(gs, c_gs))]
        grads: list[Optional[Tensor]] = [None] * (2 * depth + 2)
        c_d = None  # D's loss's upstream on every row
        if any(c is not None for c in c_ds):
            c_d = c_ds[0] if n_x == 1 else torch.cat([c if c is not None else acts[0].new_zeros(n, 1)
                                                      for c, n in zip(c_ds, sizes)])
        t, lo, hi = _rows(g_ups, sizes, acts[0])
        if (c_d is not None or t is not None) and any(needs[2 + n_x:]):
            ts: list[Optional[Tensor]] = [None] * (depth + 1)
            if t is not None:  # the penalty's tangent, forward through the layers on its rows
                ts[0] = t
                for l in range(depth):
                    t = _leaky_grad(t.mm(weights[l].t()), pre[l][lo:hi], slope, ctx.in_place)
                    ts[l + 1] = t
            full = hi - lo == acts[0].shape[0]
            for l in range(depth + 1):
                # D's weight gradient: q_l^T (c a_{l-1} + t_{l-1}); q_L = 1.
                q = qs[l] if l < depth else None
                if c_d is None:  # the penalty's rows only
                    right = ts[l]
                    q = q[lo:hi] if q is not None else None
                elif ts[l] is None:
                    right = acts[l] * c_d
                elif full:
                    right = torch.addcmul(ts[l], acts[l], c_d)
                else:
                    right = acts[l] * c_d
                    right[lo:hi] += ts[l]
                if needs[2 + n_x + 2 * l]:
                    grads[2 * l] = right.sum(0, keepdim=True) if q is None else _mm_tn(q, right)
                if needs[3 + n_x + 2 * l] and ctx.has_bias[l] and c_d is not None:
                    grads[2 * l + 1] = c_d.sum(0) if q is None else q.t().mv(c_d.view(-1))
        return (None, None, *dxs, *grads)


def mlp_step(xs: Sequence[Tensor], weights: Sequence[Tensor], biases: Sequence[Optional[Tensor]],
             slope: float) -> list[tuple[Tensor, Tensor, Tensor]]:
    """For each batch in ``xs`` (each (batch, features)): (for_d, for_g, g), the batch's logits
    under the MLP ``weights``/``biases`` with LeakyReLU(``slope``) between layers and one output,
    twice (see the module docs), and :math:`g = \\nabla_x v` per sample, shape of the batch. The
    batches go through the layers together, one product per layer (the D step's real and fake
    batches: half the calls of two passes); a penalty's double backward runs on its own batches'
    rows only."""
    params = [t for pair in zip(weights, biases) for t in pair]
    out = MLPStep.apply(slope, len(xs), *xs, *params)
    return [tuple(out[i:i + 3]) for i in range(0, len(out), 3)]  # type: ignore[misc]
