"""pygan's op layer: the kernels as PyTorch ops, one module per kernel family, named as in ``csrc/``,
``csrc/cpu/``, ``csrc/cuda/`` and ``triton_kernels/``.

- ``backend``: the policy -- which backend ("cpu", "cuda", "triton") runs an op on a device, and why
  another cannot;
- ``launch``: the one path from an op to a kernel (``pygan._C`` entries, Triton launches);
- ``loss_terms``: the table of loss terms and their float64 references (``csrc/loss_terms.h``);
- ``adversarial_loss``, ``penalty_head``, ``activation``, ``multi_tensor``, ``kernel_sums``: the ops,
  registered with ``torch.library`` (for ``torch.compile`` and CUDA graphs), each with an eager twin
  where the custom-op dispatch would cost more than a small kernel;
- ``mlp_step``: a composite op with no kernel of its own, the MLP critic's training-step forward
  with its input gradient and the R1/R2 double backward in closed form (torch's matrix products).

The public modules (``pygan.losses``, ``pygan.penalties``, ``pygan.nn``, ``pygan.ema``,
``pygan.metrics``) validate arguments and call these; docs/architecture.md follows one call through.
"""
