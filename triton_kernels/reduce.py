"""The deterministic one-launch reduction shared by pygan's Triton kernels (as csrc/cuda/reduce.cuh).

Every program stores its partial in ``partials[pid]`` and takes a ticket from ``counter``; the last
program adds the partials in program order, so the result does not depend on scheduling, stores
``total * scale`` at ``out`` and resets the counter to zero for the next launch.
"""

import triton
import triton.language as tl


@triton.jit
def finish_in_last_program(partial, partials, counter, out, scale, ACC: tl.constexpr,
                           BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    tl.store(partials + pid, partial)
    # acq_rel: our partial is visible before the ticket; the last program sees every partial.
    ticket = tl.atomic_add(counter, 1, sem="acq_rel")
    n_programs = tl.num_programs(0)
    if ticket == n_programs - 1:
        acc = tl.zeros((BLOCK,), ACC)
        for start in range(0, n_programs, BLOCK):
            offs = start + tl.arange(0, BLOCK)
            acc += tl.load(partials + offs, mask=offs < n_programs, other=0.0, volatile=True)
        tl.store(out, (tl.sum(acc, axis=0) * scale).to(out.dtype.element_ty))
        tl.atomic_xchg(counter, 0)
