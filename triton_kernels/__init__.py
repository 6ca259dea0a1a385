"""Triton kernels of pygan (installed as ``pygan.triton_kernels``).

They run on CUDA tensors, and on CPU tensors under ``TRITON_INTERPRET=1`` (how the test suite
checks them on machines without a GPU). Import this package only through
``pygan._ops.backend``, which reports a missing or unusable Triton clearly.
"""
