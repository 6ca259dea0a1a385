// The CPU kernel entries that the autograd-node module (csrc/autograd/) calls, handed over by
// pygan._C as the capsule `pygan._C.kernel_table`: one copy of the kernels and of their state (the
// instruction set in use, the thread pool) serves both modules, and _C stays free of libtorch.
#pragma once
#include "activation.h"
#include "adversarial_loss.h"
#include "penalty_head.h"

namespace pygan {

// A new entry goes at the end and bumps the version; the node module refuses a table older than
// the one it was built against (a stale _C next to a fresh module) and then stays unused.
struct KernelTable {
  int version;
  decltype(&pygan::loss_forward_cpu) loss_forward;
  decltype(&pygan::loss_backward_cpu) loss_backward;
  decltype(&pygan::relative_forward_cpu) relative_forward;
  decltype(&pygan::penalty_head_cpu) penalty_head;
  decltype(&pygan::bias_leaky_relu_cpu) bias_leaky_relu;
  decltype(&pygan::bias_leaky_relu_backward_cpu) bias_leaky_relu_backward;
};

inline constexpr int KERNEL_TABLE_VERSION = 1;
inline constexpr const char* KERNEL_TABLE_CAPSULE = "pygan._C.kernel_table";

}  // namespace pygan
