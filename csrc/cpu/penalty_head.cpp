// CPU kernels of the gradient-penalty head.
//
// The head reads each row (sample) of the inner gradient once: a sum of squares in float32 lanes,
// flushed into a float64 total every BLOCK elements (so a long row loses no precision), then the
// penalty term and its derivative factor. Per-row results are combined in row order: the penalty is
// bitwise reproducible for any thread count.
#include <algorithm>
#include <type_traits>
#include <vector>

#include "../penalty_head.h"
#include "parallel.h"

namespace pygan {
namespace {

constexpr int LANES = 8;
constexpr int64_t BLOCK = 1024;  // elements summed in float32 before a flush into float64
constexpr int64_t SHORT_ROWS = 256;  // rows shorter than LANES whose backward factors are kept at once

// Lanes in the compute type (float64 for float64 rows, else float32), flushed into a float64 total
// every BLOCK elements.
template <int DT> double row_sum_squares(const void* g, int64_t begin, int64_t cols) {
  using Acc = std::conditional_t<DT == F64, double, float>;
  double total = 0.0;
  for (int64_t b = 0; b < cols; b += BLOCK) {
    const int64_t end = std::min(cols, b + BLOCK);
    Acc acc[LANES] = {};
    int64_t j = b;
    for (; j + LANES <= end; j += LANES)
      for (int l = 0; l < LANES; ++l) {
        const Acc v = load_as<Acc>(g, begin + j + l, DT);
        acc[l] += v * v;
      }
    Acc tail = 0;
    for (; j < end; ++j) {
      const Acc v = load_as<Acc>(g, begin + j, DT);
      tail += v * v;
    }
    for (int l = 0; l < LANES; ++l) total += double(acc[l]);
    total += double(tail);
  }
  return total;
}

// Rows per work item: enough to cover a chunk of elements.
int64_t rows_per_item(int64_t cols) { return std::max<int64_t>(1, CHUNK / std::max<int64_t>(cols, 1)); }

// grad[i, j] = k(i) * g[i, j] for rows lo..hi-1, stored as dtype code OUT (g's own in the backward,
// the compute dtype for the forward's gradient). Rows shorter than a vector take a block of rows'
// factors first (that loop vectorizes across rows), then the products column by column, each the
// same k_i * g_ij as the row loop's.
template <int DT, int OUT, class Acc, class K>
void scale_rows(const void* g, int64_t lo, int64_t hi, int64_t cols, K&& k, void* grad) {
  if (cols < LANES) {
    Acc f[SHORT_ROWS];
    for (int64_t b = lo; b < hi; b += SHORT_ROWS) {
      const int64_t e = std::min(hi, b + SHORT_ROWS);
      for (int64_t i = b; i < e; ++i) f[i - b] = k(i);
      for (int64_t j = 0; j < cols; ++j)
        for (int64_t i = b; i < e; ++i)
          store_as<Acc>(grad, i * cols + j, OUT, f[i - b] * load_as<Acc>(g, i * cols + j, DT));
    }
    return;
  }
  for (int64_t i = lo; i < hi; ++i) {
    const Acc f = k(i);
    for (int64_t j = i * cols; j < (i + 1) * cols; ++j) store_as<Acc>(grad, j, OUT, f * load_as<Acc>(g, j, DT));
  }
}

template <class Acc> constexpr int acc_code() { return std::is_same_v<Acc, double> ? F64 : F32; }

template <class Acc>
void head(const void* g, int dtype, int64_t rows, int64_t cols, int kind, double center,
          double weight, Acc* out, Acc* norms, Acc* coef, Acc* values, Acc* grad) {
  std::vector<double> phi(rows);
  std::vector<Acc> scratch(coef == nullptr ? rows : 0);  // the factors, where the caller keeps none
  if (coef == nullptr) coef = scratch.data();
  if (norms == nullptr) norms = coef;  // a row's norm is read before its factor is written
  const double scale = weight / double(rows);
  const int64_t per = rows_per_item(cols);
  dispatch_dtype(dtype, [&](auto tag) {
    constexpr int DT = decltype(tag)::value;
    parallel_items((rows + per - 1) / per, rows * cols, [&](int64_t item) {
      const int64_t lo = item * per, hi = std::min(rows, (item + 1) * per);
      // Two loops: the sums of squares (into norms), then the per-row math, which the compiler
      // vectorizes across rows (a square root and a division per row dominate short rows).
      if (cols < LANES) {
        // Rows shorter than a vector (a toy critic's 2-d input): column by column across the rows,
        // so the loop runs in vector lanes over rows. Each row adds its squares from zero in column
        // order, as row_sum_squares' tail does when it has no full lanes: the same bits.
        for (int64_t i = lo; i < hi; ++i) norms[i] = Acc(0);
        for (int64_t j = 0; j < cols; ++j)
          for (int64_t i = lo; i < hi; ++i) {
            const Acc v = load_as<Acc>(g, i * cols + j, DT);
            norms[i] += v * v;
          }
      } else {
        for (int64_t i = lo; i < hi; ++i) norms[i] = Acc(row_sum_squares<DT>(g, i * cols, cols));
      }
      for (int64_t i = lo; i < hi; ++i) {
        Acc p, k;
        penalty_phi<Acc>(kind, norms[i], Acc(center), norms[i], p, k);
        phi[i] = double(p);
        coef[i] = Acc(scale * double(k));
      }
      if (values != nullptr)
        for (int64_t i = lo; i < hi; ++i) values[i] = Acc(weight * phi[i]);
      // The gradient for an upstream of one: the backward's factor up * coef_i is then coef_i.
      if (grad != nullptr)
        scale_rows<DT, acc_code<Acc>(), Acc>(g, lo, hi, cols, [&](int64_t i) { return coef[i]; }, grad);
    });
  });
  double total = 0.0;
  for (double p : phi) total += p;  // row order
  *out = Acc(total * scale);
}

template <class Acc>
void head_backward(const void* g, int dtype, int64_t rows, int64_t cols, const Acc* coef, Acc up,
                   const Acc* norms, const Acc* up_norms, void* grad) {
  const int64_t per = rows_per_item(cols);
  dispatch_dtype(dtype, [&](auto tag) {
    constexpr int DT = decltype(tag)::value;
    parallel_items((rows + per - 1) / per, rows * cols, [&](int64_t item) {
      const int64_t lo = item * per, hi = std::min(rows, (item + 1) * per);
      scale_rows<DT, DT, Acc>(g, lo, hi, cols,
                              [&](int64_t i) { return penalty_row_factor(up, coef[i], norms, up_norms, i); }, grad);
    });
  });
}

}  // namespace

void penalty_head_cpu(uintptr_t g, int dtype, int64_t rows, int64_t cols, int kind, double center,
                      double weight, uintptr_t out, uintptr_t norms, uintptr_t coef, uintptr_t values,
                      uintptr_t grad) {
  const void* x = reinterpret_cast<const void*>(g);
  auto run = [&](auto zero) {
    using Acc = decltype(zero);
    head<Acc>(x, dtype, rows, cols, kind, center, weight, reinterpret_cast<Acc*>(out),
              reinterpret_cast<Acc*>(norms), reinterpret_cast<Acc*>(coef), reinterpret_cast<Acc*>(values),
              reinterpret_cast<Acc*>(grad));
  };
  if (dtype == F64) run(0.0);
  else run(0.0f);
}

void penalty_head_backward_cpu(uintptr_t g, int dtype, int64_t rows, int64_t cols, uintptr_t coef,
                               uintptr_t up, uintptr_t norms, uintptr_t up_norms, uintptr_t grad) {
  const void* x = reinterpret_cast<const void*>(g);
  void* out = reinterpret_cast<void*>(grad);
  auto run = [&](auto zero) {
    using Acc = decltype(zero);
    head_backward<Acc>(x, dtype, rows, cols, reinterpret_cast<const Acc*>(coef),
                       *reinterpret_cast<const Acc*>(up), reinterpret_cast<const Acc*>(norms),
                       reinterpret_cast<const Acc*>(up_norms), out);
  };
  if (dtype == F64) run(0.0);
  else run(0.0f);
}

}  // namespace pygan
