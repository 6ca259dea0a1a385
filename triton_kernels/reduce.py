"""The deterministic one-launch reduction shared by pygan's Triton kernels (as csrc/cuda/reduce.cuh).

Every program stores its partial in ``partials[pid]`` and takes a ticket from ``counter``; the last
program adds the partials in program order, so the result does not depend on scheduling, stores
``total * scale`` at ``out`` and resets the counter to zero for the next launch. The minimax loss
reduces two sums in one launch the same way.
"""

import triton
import triton.language as tl


@triton.jit
def _sum_partials(partials, n_programs, ACC: tl.constexpr, BLOCK: tl.constexpr):
    acc = tl.zeros((BLOCK,), ACC)
    for start in range(0, n_programs, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        acc += tl.load(partials + offs, mask=offs < n_programs, other=0.0, volatile=True)
    return tl.sum(acc, axis=0)


@triton.jit
def finish_in_last_program(partial, partials, counter, out, scale, ACC: tl.constexpr,
                           BLOCK: tl.constexpr):
    finish_two_in_last_program(partial, partial, partials, counter, out, out, scale, False, ACC, BLOCK)


@triton.jit
def finish_two_in_last_program(partial, partial_b, partials, counter, out, out_b, scale,
                               TWO: tl.constexpr, ACC: tl.constexpr, BLOCK: tl.constexpr):
    """The same for one sum, or with TWO for a second sum at once (``partial_b`` into
    ``partials[num_programs + pid]``, its total at ``out_b``)."""
    pid = tl.program_id(0)
    n_programs = tl.num_programs(0)
    tl.store(partials + pid, partial)
    if TWO:
        tl.store(partials + n_programs + pid, partial_b)
    # acq_rel: our partials are visible before the ticket; the last program sees every partial.
    ticket = tl.atomic_add(counter, 1, sem="acq_rel")
    if ticket == n_programs - 1:
        total = _sum_partials(partials, n_programs, ACC, BLOCK)
        tl.store(out, (total * scale).to(out.dtype.element_ty))
        if TWO:
            total_b = _sum_partials(partials + n_programs, n_programs, ACC, BLOCK)
            tl.store(out_b, (total_b * scale).to(out_b.dtype.element_ty))
        tl.atomic_xchg(counter, 0)
