// CUDA kernel sums (see kernel_sums.h): one block of 256 threads per 64-row tile, walking the column
// tiles J >= I. Per tile: the 64 x 64 dot products from 16-feature slices staged in shared memory
// (each thread a 4 x 4 register block), then per bandwidth the kernel values into shared memory, the
// row and column sums, and the label products, each reduced in a fixed order. The block's float64
// sums go to its own slot of the partials, which the caller adds in tile order: deterministic,
// nothing allocated, graph-capturable.
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "../kernel_sums.h"

namespace pygan {
namespace {

constexpr int THREADS = 256;
constexpr int TILE = KERNEL_TILE;
// Features per shared-memory slice: 16, or 8 in float64, to stay within 48 KiB of static shared memory.
template <class Acc> constexpr int KC = sizeof(Acc) == 8 ? 8 : 16;

// ||z_i - z_j||^2 from the differences, for the near-duplicate pairs (needs_direct, kernel_sums.h).
template <class Acc> __device__ Acc direct_distance(const KernelSumArgs& a, int64_t i, int64_t j) {
  const void* z = reinterpret_cast<const void*>(a.z);
  Acc s = Acc(0);
  for (int64_t k = 0; k < a.d; ++k) {
    const Acc diff = load_as<Acc>(z, i * a.d + k, a.dtype) - load_as<Acc>(z, j * a.d + k, a.dtype);
    s += diff * diff;
  }
  return s;
}

template <class Acc>
__global__ void __launch_bounds__(THREADS) kernel_sums_kernel(KernelSumArgs a) {
  constexpr int KC = pygan::KC<Acc>;
  __shared__ Acc zi[TILE][KC + 1], zj[TILE][KC + 1];
  __shared__ Acc ks[TILE][TILE + 1];
  __shared__ Acc rs[TILE], cs[TILE];
  __shared__ Acc red_q[THREADS], red_u[THREADS];

  const Acc* norms = reinterpret_cast<const Acc*>(a.sq_norms);
  const Acc* labels = reinterpret_cast<const Acc*>(a.labels);
  const int64_t n = a.n, d = a.d, P = a.p, tiles = kernel_sum_tiles(n);
  const int64_t I = blockIdx.x, i0 = I * TILE;
  const int t = threadIdx.x, ty = t / 16, tx = t % 16;
  // Label work split: thread t takes column p = t % pp of rows (or columns) r = slice, slice + S, ...
  int pp = 1;
  while (pp < P) pp <<= 1;
  const int slices = THREADS / pp, p = t % pp, slice = t / pp;

  double acc_total[MAX_KERNEL_PARAMS] = {}, acc_u[MAX_KERNEL_PARAMS] = {}, acc_q[MAX_KERNEL_PARAMS] = {};

  for (int64_t J = I; J < tiles; ++J) {
    const int64_t j0 = J * TILE;
    Acc dot[4][4] = {};
    for (int64_t k0 = 0; k0 < d; k0 += KC) {
      for (int e = t; e < TILE * KC; e += THREADS) {
        const int r = e / KC, k = e % KC;
        const bool kin = k0 + k < d;
        zi[r][k] = (kin && i0 + r < n) ? load_as<Acc>(reinterpret_cast<const void*>(a.z), (i0 + r) * d + k0 + k, a.dtype) : Acc(0);
        zj[r][k] = (kin && j0 + r < n) ? load_as<Acc>(reinterpret_cast<const void*>(a.z), (j0 + r) * d + k0 + k, a.dtype) : Acc(0);
      }
      __syncthreads();
#pragma unroll
      for (int k = 0; k < KC; ++k) {
        Acc av[4], bv[4];
#pragma unroll
        for (int q = 0; q < 4; ++q) {
          av[q] = zi[ty * 4 + q][k];
          bv[q] = zj[tx * 4 + q][k];
        }
#pragma unroll
        for (int r = 0; r < 4; ++r)
#pragma unroll
          for (int c = 0; c < 4; ++c) dot[r][c] += av[r] * bv[c];
      }
      __syncthreads();
    }
    const double weight = J == I ? 1.0 : 2.0;
    Acc dist[4][4] = {};
    if (a.kind != POLYNOMIAL) {
#pragma unroll
      for (int r = 0; r < 4; ++r) {
#pragma unroll
        for (int q = 0; q < 4; ++q) {
          const int64_t gi = i0 + ty * 4 + r, gj = j0 + tx * 4 + q;
          if (gi < n && gj < n) {
            Acc s = norm_distance(norms[gi], norms[gj], dot[r][q]);
            if (needs_direct(s, norms[gi], norms[gj])) s = direct_distance<Acc>(a, gi, gj);
            dist[r][q] = s;
          }
        }
      }
    }

#pragma unroll 1
    for (int b = 0; b < a.n_params; ++b) {
      const Acc c = Acc(a.params[b]);
#pragma unroll
      for (int r = 0; r < 4; ++r) {
#pragma unroll
        for (int q = 0; q < 4; ++q) {
          const int row = ty * 4 + r, col = tx * 4 + q;
          const int64_t gi = i0 + row, gj = j0 + col;
          Acc v = Acc(0);
          if (gi < n && gj < n && gi != gj) {
            v = kernel_value<Acc>(a.kind, dist[r][q], dot[r][q], c, Acc(a.coef0), a.degree);
          }
          ks[row][col] = v;
        }
      }
      __syncthreads();
      if (t < TILE) {
        Acc s = 0;
        for (int col = 0; col < TILE; ++col) s += ks[t][col];
        rs[t] = s;
      } else if (t < 2 * TILE) {
        Acc s = 0;
        for (int row = 0; row < TILE; ++row) s += ks[row][t - TILE];
        cs[t - TILE] = s;
      }
      __syncthreads();
      Acc pq = 0, pu = 0;
      if (p < P) {
        for (int r = slice; r < TILE; r += slices) {
          const int64_t gi = i0 + r, gj = j0 + r;
          if (gi < n) {
            Acc m = 0;
            for (int col = 0; col < TILE && j0 + col < n; ++col) m += ks[r][col] * labels[(j0 + col) * P + p];
            pq += labels[gi * P + p] * m;
            if (J != I) pu += rs[r] * labels[gi * P + p];
          }
          if (gj < n) pu += cs[r] * labels[gj * P + p];
        }
      }
      red_q[t] = pq;
      red_u[t] = pu;
      __syncthreads();
      if (t < P) {
        Acc sq = 0, su = 0;
        for (int s = 0; s < slices; ++s) {
          sq += red_q[s * pp + t];
          su += red_u[s * pp + t];
        }
        for (int bb = 0; bb < MAX_KERNEL_PARAMS; ++bb)
          if (bb == b) {
            acc_q[bb] += weight * double(sq);
            acc_u[bb] += double(su);
          }
      }
      if (t == 0) {
        Acc s = 0;
        for (int r = 0; r < TILE; ++r) s += rs[r];
        for (int bb = 0; bb < MAX_KERNEL_PARAMS; ++bb)
          if (bb == b) acc_total[bb] += weight * double(s);
      }
      __syncthreads();  // ks, rs, cs and red_* are rewritten for the next bandwidth
    }
  }
  double* out = reinterpret_cast<double*>(a.partials) + I * a.n_params * (1 + 2 * P);
  for (int b = 0; b < MAX_KERNEL_PARAMS; ++b) {
    if (b >= a.n_params) break;
    double* o = out + b * (1 + 2 * P);
    if (t == 0) o[0] = acc_total[b];
    if (t < P) {
      o[1 + t] = acc_u[b];
      o[1 + P + t] = acc_q[b];
    }
  }
}

}  // namespace

void kernel_sums_cuda(const KernelSumArgs& a, uintptr_t stream) {
  if (a.p > THREADS) throw std::invalid_argument("kernel_sums_cuda: at most 256 label columns per launch");
  const int64_t tiles = kernel_sum_tiles(a.n);
  if (tiles == 0) return;
  auto s = reinterpret_cast<cudaStream_t>(stream);
  if (a.dtype == F64)
    kernel_sums_kernel<double><<<unsigned(tiles), THREADS, 0, s>>>(a);
  else
    kernel_sums_kernel<float><<<unsigned(tiles), THREADS, 0, s>>>(a);
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) throw std::runtime_error(std::string("kernel_sums_cuda: ") + cudaGetErrorString(err));
}

}  // namespace pygan
