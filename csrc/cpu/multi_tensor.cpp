// CPU multi-tensor updates: every CHUNK-element chunk of every tensor is one work item, numbered
// across the tensors, so one parallel pass covers a whole model however its sizes are spread.
#include <algorithm>
#include <type_traits>

#include "../multi_tensor.h"
#include "parallel.h"

namespace pygan {

void multi_tensor_cpu(const MultiTensorArgs& a) {
  std::vector<int64_t> first(a.dst.size() + 1, 0);
  int64_t total = 0;
  for (size_t t = 0; t < a.dst.size(); ++t) {
    first[t + 1] = first[t] + (a.sizes[t] + CHUNK - 1) / CHUNK;
    total += a.sizes[t];
  }
  const double w = a.op == LERP ? *reinterpret_cast<const double*>(a.weight) : 0.0;
  parallel_items(first.back(), total, [&](int64_t item) {
    const size_t t = size_t(std::upper_bound(first.begin(), first.end(), item) - first.begin() - 1);
    void* d = reinterpret_cast<void*>(a.dst[t]);
    const void* s = a.op == LERP ? reinterpret_cast<const void*>(a.src[t]) : d;
    const int64_t lo = (item - first[t]) * CHUNK, hi = std::min(a.sizes[t], lo + CHUNK);
    dispatch_dtype(a.dtypes[t], [&](auto tag) {
      constexpr int DT = decltype(tag)::value;
      using Acc = std::conditional_t<DT == F64, double, float>;
      // The op as a compile-time constant: the loop body is then branch-free and vectorizes.
      auto loop = [&](auto op_tag) {
        constexpr int OP = decltype(op_tag)::value;
        const Acc bound = Acc(a.bound), wa = Acc(w);
        for (int64_t i = lo; i < hi; ++i)
          store_as<Acc>(d, i, DT, multi_tensor_value<Acc>(OP, load_as<Acc>(d, i, DT),
                                                           load_as<Acc>(s, i, DT), bound, wa));
      };
      if (a.op == LERP) loop(std::integral_constant<int, LERP>{});
      else loop(std::integral_constant<int, CLIP>{});
    });
  });
}

}  // namespace pygan
