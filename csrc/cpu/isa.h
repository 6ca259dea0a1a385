// The builds of a per-ISA CPU loop (a *_chunks.cpp or *_tiles.cpp file compiled once per
// instruction set): PYGAN_CPU_BUILDS(declarations) declares them inside namespace pygan, and
// PYGAN_CPU_BUILD(name) is the one to call, the build set_cpu_isa chose for the loss loops (every CPU
// loop follows that one choice, so tests and benchmarks switch all of them at once).
#pragma once
#include <string>

#include "../adversarial_loss.h"

#if defined(PYGAN_HAVE_AVX2)
#define PYGAN_CPU_BUILD(fn) (::pygan::cpu_isa() == "avx2" ? &::pygan::isa_avx2::fn : &::pygan::isa_base::fn)
#else
#define PYGAN_CPU_BUILD(fn) (&::pygan::isa_base::fn)
#endif

#if defined(PYGAN_HAVE_AVX2)
#define PYGAN_CPU_BUILDS(...) \
  namespace isa_base { __VA_ARGS__ } \
  namespace isa_avx2 { __VA_ARGS__ }
#else
#define PYGAN_CPU_BUILDS(...) \
  namespace isa_base { __VA_ARGS__ }
#endif
