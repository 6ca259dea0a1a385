// The CPU kernel-sum loop for one row tile (see kernel_sums.h), built once per instruction set like
// the loss loops: this file for any CPU, kernel_sum_tiles_avx2.cpp with AVX2 + FMA. kernel_sums.cpp
// owns the threading and picks the build.
//
// Per column tile: the 64 x 64 dot products by a register-blocked product (4 rows x one 64-byte
// vector of columns held in registers across the feature loop), the squared distances from the dot
// products and the norms (z arrives centred for the distance kernels, which keeps that form
// accurate) or, for near-duplicate pairs, from the differences (kernel_sums.h), the kernel values
// for each bandwidth, then the tile's row sums, column sums and label products. Tile sums are
// formed in the compute dtype and added to float64 accumulators.
#include <algorithm>
#include <cmath>
#include <vector>

#include "../fast_math.h"
#include "../kernel_sums.h"
#include "../simd.h"

namespace pygan {
inline namespace PYGAN_ISA {
namespace {

constexpr int TILE = KERNEL_TILE;
constexpr int ROWS = 4;  // rows per register block

template <class T> struct Block {
  static constexpr int LANES = 64 / sizeof(T);
  typedef T vec __attribute__((vector_size(64)));
};

// dot[r][c] = z_I[r] . zt[:, c] for r < rows, all TILE columns (zt: d x TILE, zero-padded columns).
template <class T>
void dot_tile(const T* zi, int64_t d, int rows, const T* zt, T* dot) {
  using vec = typename Block<T>::vec;
  constexpr int L = Block<T>::LANES;
  for (int r0 = 0; r0 < rows; r0 += ROWS) {
    const int nr = std::min(ROWS, rows - r0);
    for (int c0 = 0; c0 < TILE; c0 += L) {
      vec acc[ROWS] = {};
      for (int64_t k = 0; k < d; ++k) {
        vec b;
        __builtin_memcpy(&b, zt + k * TILE + c0, sizeof(vec));
#pragma GCC unroll 4
        for (int r = 0; r < ROWS; ++r) acc[r] += zi[(r0 + std::min(r, nr - 1)) * d + k] * b;
      }
      for (int r = 0; r < nr; ++r) __builtin_memcpy(dot + (r0 + r) * TILE + c0, &acc[r], sizeof(vec));
    }
  }
}

// dist[r][c] = ||z_I[r] - z_J[c]||^2 for r < rows, c < cols: from the norms and dot products, or
// from the differences where that form cancels (see needs_direct in kernel_sums.h).
template <class T>
void distance_tile(const T* zi, const T* zj, int64_t d, int rows, int cols, const T* ni, const T* nj,
                   const T* dot, T* dist) {
  for (int r = 0; r < rows; ++r) {
    T* s = dist + r * TILE;
    const T* dr = dot + r * TILE;
    const T nr = ni[r];
    // One branch-free (vectorized) pass; the rare near pairs are fixed after. Padding columns
    // (nj = dot = 0) are never near: s = nr is not below a share of nr.
    int near = 0;
    for (int c = 0; c < TILE; ++c) {
      const T v = norm_distance(nr, nj[c], dr[c]);
      s[c] = v;
      near |= needs_direct(v, nr, nj[c]);
    }
    if (!near) continue;
    for (int c = 0; c < cols; ++c) {
      if (!needs_direct(s[c], nr, nj[c])) continue;
      const T* a = zi + r * d;
      const T* b = zj + c * d;
      T sum = T(0);
      for (int64_t k = 0; k < d; ++k) {
        const T diff = a[k] - b[k];
        sum += diff * diff;
      }
      s[c] = sum;
    }
  }
}

// out[c] = k(s, dot) over one row of the tile (s the squared distances, dot the dot products).
template <class T>
void kernel_row(const KernelSumArgs& a, T c, const T* dist, const T* dot, T* out) {
  const T coef0 = T(a.coef0);
  for (int j = 0; j < TILE; ++j) {
    const T s = dist[j];
    out[j] = a.kind == GAUSSIAN ? -s * c : (a.kind == LAPLACE ? -std::sqrt(s) * c : s);
  }
  if (a.kind == GAUSSIAN || a.kind == LAPLACE) {
    if constexpr (std::is_same_v<T, float>) {
      // -s * c <= 0 (s >= 0, c > 0): the cheaper exp for non-positive arguments serves.
      for (int j = 0; j < TILE; j += VEC_WIDTH) VecMath::exp_nonpositive(VecF::load(out + j)).store(out + j);
    } else {
      for (int j = 0; j < TILE; ++j) out[j] = std::exp(out[j]);
    }
  } else if (a.kind == IMQ) {
    for (int j = 0; j < TILE; ++j) out[j] = T(1) / std::sqrt(T(1) + out[j] * c);
  } else {
    for (int j = 0; j < TILE; ++j) out[j] = kernel_value<T>(POLYNOMIAL, T(0), dot[j], c, coef0, a.degree);
  }
}

template <class T> void row_tile(const KernelSumArgs& a, int64_t I) {
  const T* z = reinterpret_cast<const T*>(a.z);
  const T* norms = reinterpret_cast<const T*>(a.sq_norms);
  const T* labels = reinterpret_cast<const T*>(a.labels);
  const int64_t n = a.n, d = a.d, P = a.p, tiles = kernel_sum_tiles(n);
  const int B = a.n_params;
  const int64_t i0 = I * TILE;
  const int mi = int(std::min<int64_t>(TILE, n - i0));

  std::vector<double> acc(size_t(B) * (1 + 2 * P), 0.0);
  std::vector<T> zt(size_t(d) * TILE), dot(TILE * TILE), dist(TILE * TILE, T(0)), kt(TILE * TILE), nj(TILE),
      lj(TILE * P, T(0));
  std::vector<T> rowsum(TILE), colsum(TILE), m(P), u_tile(P), q_tile(P);
  const T* li = labels + i0 * P;

  for (int64_t J = I; J < tiles; ++J) {
    const int64_t j0 = J * TILE;
    const int mj = int(std::min<int64_t>(TILE, n - j0));
    for (int c = 0; c < TILE; ++c) {
      const bool in = c < mj;
      for (int64_t k = 0; k < d; ++k) zt[k * TILE + c] = in ? z[(j0 + c) * d + k] : T(0);
      nj[c] = in ? norms[j0 + c] : T(0);
      for (int64_t p = 0; p < P; ++p) lj[c * P + p] = in ? labels[(j0 + c) * P + p] : T(0);
    }
    dot_tile<T>(z + i0 * d, d, mi, zt.data(), dot.data());
    if (a.kind != POLYNOMIAL)
      distance_tile<T>(z + i0 * d, z + j0 * d, d, mi, mj, norms + i0, nj.data(), dot.data(), dist.data());
    const double weight = J == I ? 1.0 : 2.0;

    for (int b = 0; b < B; ++b) {
      const T c = T(a.params[b]);
      std::fill(colsum.begin(), colsum.end(), T(0));
      for (int r = 0; r < mi; ++r) {
        T* row = kt.data() + r * TILE;
        kernel_row<T>(a, c, dist.data() + r * TILE, dot.data() + r * TILE, row);
        for (int j = mj; j < TILE; ++j) row[j] = T(0);
        if (J == I) row[r] = T(0);  // pairs i != j only
        T s = T(0);
        for (int j = 0; j < TILE; ++j) {
          s += row[j];
          colsum[j] += row[j];
        }
        rowsum[r] = s;
      }
      double* out = acc.data() + size_t(b) * (1 + 2 * P);
      T total = T(0);
      for (int r = 0; r < mi; ++r) total += rowsum[r];
      out[0] += weight * double(total);
      // u: column sums against the column tile's labels (and, mirrored, row sums against the row's).
      std::fill(u_tile.begin(), u_tile.end(), T(0));
      for (int j = 0; j < mj; ++j)
        for (int64_t p = 0; p < P; ++p) u_tile[p] += colsum[j] * lj[j * P + p];
      if (J != I)
        for (int r = 0; r < mi; ++r)
          for (int64_t p = 0; p < P; ++p) u_tile[p] += rowsum[r] * li[r * P + p];
      // q: x_I' K x_J, as (K x_J) row by row.
      std::fill(q_tile.begin(), q_tile.end(), T(0));
      for (int r = 0; r < mi; ++r) {
        const T* row = kt.data() + r * TILE;
        if (P == 1) {
          T s = T(0);
          for (int j = 0; j < TILE; ++j) s += row[j] * lj[j];
          q_tile[0] += li[r] * s;
          continue;
        }
        std::fill(m.begin(), m.end(), T(0));
        for (int j = 0; j < mj; ++j) {
          const T kv = row[j];
          const T* l = lj.data() + j * P;
          for (int64_t p = 0; p < P; ++p) m[p] += kv * l[p];
        }
        for (int64_t p = 0; p < P; ++p) q_tile[p] += li[r * P + p] * m[p];
      }
      for (int64_t p = 0; p < P; ++p) {
        out[1 + p] += double(u_tile[p]);
        out[1 + P + p] += weight * double(q_tile[p]);
      }
    }
  }
  std::copy(acc.begin(), acc.end(), reinterpret_cast<double*>(a.partials) + I * acc.size());
}

}  // namespace

void kernel_sum_row_tile(const KernelSumArgs& a, int64_t tile) {
  if (a.dtype == F64)
    row_tile<double>(a, tile);
  else
    row_tile<float>(a, tile);
}

}  // namespace PYGAN_ISA
}  // namespace pygan
