// CPU kernels of the fused adversarial loss: one pass per side, forward and backward.
//
// Work is cut into fixed chunks of CHUNK elements whatever the thread count, and partial sums are
// added in chunk order, so results are bitwise reproducible across runs and thread counts. float32
// (and bf16 / fp16, computed in float32) loops use VecMath and vectorize; float64 uses libm.
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <thread>
#include <type_traits>
#include <vector>

#include "../adversarial_loss.h"
#include "../loss_terms.h"

namespace pygan {
namespace {

constexpr int64_t CHUNK = 16384;        // elements per work item
constexpr int64_t PER_THREAD = 65536;   // fewer elements than this per thread: stay single-threaded
constexpr int LANES = 16;               // independent accumulators: lets the reduction vectorize

int num_threads(int64_t n_chunks, int64_t n) {
  static const int configured = [] {
    const char* env = std::getenv("PYGAN_NUM_THREADS");
    int t = env ? std::atoi(env) : int(std::thread::hardware_concurrency());
    return std::max(1, t);
  }();
  int64_t t = std::min<int64_t>(configured, n_chunks);
  t = std::min<int64_t>(t, std::max<int64_t>(1, n / PER_THREAD));
  return int(std::max<int64_t>(1, t));
}

// Runs fn(chunk) for every chunk on up to num_threads threads (the caller is one of them).
template <class F> void parallel_chunks(int64_t n, F&& fn) {
  const int64_t n_chunks = (n + CHUNK - 1) / CHUNK;
  const int threads = num_threads(n_chunks, n);
  if (threads <= 1) {
    for (int64_t c = 0; c < n_chunks; ++c) fn(c);
    return;
  }
  std::atomic<int64_t> next{0};
  auto worker = [&] {
    for (int64_t c = next.fetch_add(1); c < n_chunks; c = next.fetch_add(1)) fn(c);
  };
  std::vector<std::thread> pool;
  pool.reserve(threads - 1);
  for (int t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (auto& th : pool) th.join();
}

template <class T> struct Storage;
template <> struct Storage<float> {
  using type = float;
  static float load(float x) { return x; }
  static float store(float x) { return x; }
};
template <> struct Storage<double> {
  using type = double;
  static double load(double x) { return x; }
  static double store(double x) { return x; }
};
struct Half { uint16_t bits; };
struct BFloat { uint16_t bits; };
template <> struct Storage<Half> {
  using type = uint16_t;
  static float load(uint16_t x) { return f16_to_float(x); }
  static uint16_t store(float x) { return float_to_f16(x); }
};
template <> struct Storage<BFloat> {
  using type = uint16_t;
  static float load(uint16_t x) { return bf16_to_float(x); }
  static uint16_t store(float x) { return float_to_bf16(x); }
};

template <class S> using compute_t = std::conditional_t<std::is_same_v<S, double>, double, float>;
template <class S> using math_t = std::conditional_t<std::is_same_v<S, double>, StdMath, VecMath>;

template <class S> struct StorageTag { using type = S; };

// Calls f(StorageTag<S>{}) with S the storage type of the dtype code.
template <class F> void dispatch_dtype(int dtype, F&& f) {
  switch (dtype) {
    case F64: f(StorageTag<double>{}); break;
    case F16: f(StorageTag<Half>{}); break;
    case BF16: f(StorageTag<BFloat>{}); break;
    default: f(StorageTag<float>{}); break;
  }
}

template <class S> compute_t<S> read_shift(const Side& s) {
  return s.shift ? *reinterpret_cast<const compute_t<S>*>(s.shift) : compute_t<S>(0);
}

// Sum of sign * term over one side (weighted by the reduction), or elementwise values into out.
template <class S, int C>
double forward_side(const Side& s, double alpha, int reduction, uintptr_t out) {
  using T = compute_t<S>;
  using M = math_t<S>;
  using ST = typename Storage<S>::type;
  const ST* x = reinterpret_cast<const ST*>(s.x);
  const T shift = read_shift<S>(s);
  const T a = T(alpha);
  const int64_t n = s.n;
  if (reduction == NONE) {
    ST* o = reinterpret_cast<ST*>(out);
    const T sign = T(s.sign);
    parallel_chunks(n, [&](int64_t c) {
      const int64_t lo = c * CHUNK, hi = std::min(n, lo + CHUNK);
#pragma GCC ivdep
      for (int64_t i = lo; i < hi; ++i) {
        T v, d;
        term<C, M>(T(Storage<S>::load(x[i])) - shift, a, v, d);
        o[i] = Storage<S>::store(sign * v);
      }
    });
    return 0.0;
  }
  const int64_t n_chunks = (n + CHUNK - 1) / CHUNK;
  std::vector<double> partial(n_chunks, 0.0);
  parallel_chunks(n, [&](int64_t c) {
    const int64_t lo = c * CHUNK, hi = std::min(n, lo + CHUNK);
    T acc[LANES] = {};
    int64_t i = lo;
    for (; i + LANES <= hi; i += LANES) {
#pragma GCC ivdep
      for (int l = 0; l < LANES; ++l) {
        T v, d;
        term<C, M>(T(Storage<S>::load(x[i + l])) - shift, a, v, d);
        acc[l] += v;
      }
    }
    for (int l = 0; i < hi; ++i, ++l) {
      T v, d;
      term<C, M>(T(Storage<S>::load(x[i])) - shift, a, v, d);
      acc[l] += v;
    }
    double sum = 0.0;
    for (int l = 0; l < LANES; ++l) sum += double(acc[l]);
    partial[c] = sum;
  });
  double total = 0.0;
  for (double p : partial) total += p;
  return total * side_weight(s, reduction);
}

template <class S, int C>
void backward_side(const Side& s, double alpha, int reduction, double up_scalar, uintptr_t up,
                   uintptr_t grad) {
  using T = compute_t<S>;
  using M = math_t<S>;
  using ST = typename Storage<S>::type;
  const ST* x = reinterpret_cast<const ST*>(s.x);
  const ST* u_el = reinterpret_cast<const ST*>(up);
  ST* g = reinterpret_cast<ST*>(grad);
  const T shift = read_shift<S>(s);
  const T a = T(alpha);
  const int64_t n = s.n;
  const T w = T(side_weight(s, reduction));
  const T scale = T(up_scalar * side_weight(s, reduction));
  parallel_chunks(n, [&](int64_t c) {
    const int64_t lo = c * CHUNK, hi = std::min(n, lo + CHUNK);
    if (reduction == NONE) {
#pragma GCC ivdep
      for (int64_t i = lo; i < hi; ++i) {
        T v, d;
        term<C, M>(T(Storage<S>::load(x[i])) - shift, a, v, d);
        g[i] = Storage<S>::store(T(Storage<S>::load(u_el[i])) * w * d);
      }
    } else {
#pragma GCC ivdep
      for (int64_t i = lo; i < hi; ++i) {
        T v, d;
        term<C, M>(T(Storage<S>::load(x[i])) - shift, a, v, d);
        g[i] = Storage<S>::store(scale * d);
      }
    }
  });
}

}  // namespace

void loss_forward_cpu(const Side& s0, const Side& s1, double alpha, int reduction, uintptr_t out0,
                      uintptr_t out1, uintptr_t out, int out_dtype) {
  double total = 0.0;
  const Side* sides[2] = {&s0, &s1};
  const uintptr_t outs[2] = {out0, out1};
  for (int k = 0; k < 2; ++k) {
    const Side& s = *sides[k];
    if (s.n == 0) continue;
    dispatch_dtype(s.dtype, [&](auto tag) {
      using S = typename decltype(tag)::type;
      dispatch_term(s.term, [&](auto tag) {
        constexpr int C = decltype(tag)::value; total += forward_side<S, C>(s, alpha, reduction, outs[k]); });
    });
  }
  if (reduction != NONE) store_as<double>(reinterpret_cast<void*>(out), 0, out_dtype, total);
}

void loss_backward_cpu(const Side& s0, const Side& s1, double alpha, int reduction, uintptr_t up,
                       int up_dtype, uintptr_t up0, uintptr_t up1, uintptr_t grad0, uintptr_t grad1) {
  const double up_scalar =
      reduction == NONE ? 0.0 : load_as<double>(reinterpret_cast<const void*>(up), 0, up_dtype);
  const Side* sides[2] = {&s0, &s1};
  const uintptr_t ups[2] = {up0, up1};
  const uintptr_t grads[2] = {grad0, grad1};
  for (int k = 0; k < 2; ++k) {
    const Side& s = *sides[k];
    if (s.n == 0) continue;
    dispatch_dtype(s.dtype, [&](auto tag) {
      using S = typename decltype(tag)::type;
      dispatch_term(s.term, [&](auto tag) {
        constexpr int C = decltype(tag)::value;
        backward_side<S, C>(s, alpha, reduction, up_scalar, ups[k], grads[k]);
      });
    });
  }
}

}  // namespace pygan
