// The per-chunk loop of the CPU multi-tensor updates (multi_tensor.h), built once per instruction set
// like the loss loops: this file for any CPU, multi_tensor_chunks_avx2.cpp with AVX2 + FMA;
// multi_tensor.cpp owns the work items and picks the build.
#include <type_traits>

#include "../multi_tensor.h"

namespace pygan {
inline namespace PYGAN_ISA {

void multi_tensor_chunk(int op, int dtype, void* d, const void* s, double bound, double w, int64_t lo,
                        int64_t hi) {
  dispatch_dtype(dtype, [&](auto tag) {
    constexpr int DT = decltype(tag)::value;
    using Acc = std::conditional_t<DT == F64, double, float>;
    // The op as a compile-time constant: the loop body is then branch-free and vectorizes.
    auto loop = [&](auto op_tag) {
      constexpr int OP = decltype(op_tag)::value;
      const Acc b = Acc(bound), wa = Acc(w);
      if constexpr (DT == F32 || DT == F64) {
        // Typed pointers, and CLIP reading only its destination: the loop vectorizes (through
        // void pointers and the shared source it stayed scalar).
        Acc* dd = static_cast<Acc*>(d);
        const Acc* ss = static_cast<const Acc*>(s);
        if constexpr (OP == CLIP) {
          for (int64_t i = lo; i < hi; ++i) dd[i] = multi_tensor_value<Acc>(OP, dd[i], dd[i], b, wa);
        } else {
          for (int64_t i = lo; i < hi; ++i) dd[i] = multi_tensor_value<Acc>(OP, dd[i], ss[i], b, wa);
        }
      } else {
        for (int64_t i = lo; i < hi; ++i)
          store_as<Acc>(d, i, DT, multi_tensor_value<Acc>(OP, load_as<Acc>(d, i, DT), load_as<Acc>(s, i, DT), b, wa));
      }
    };
    if (op == LERP) loop(std::integral_constant<int, LERP>{});
    else loop(std::integral_constant<int, CLIP>{});
  });
}

}  // namespace PYGAN_ISA
}  // namespace pygan
