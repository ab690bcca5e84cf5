// Convolution forward (the spec: reference::conv_forward_at in common/reference.h) on the phased layout
// (conv_layout.h): y[co][e] = sum_k W[co][k] * X[k][e], one GEMM per (image, group) whose B rows are the
// runs. Small images (conv_layout.h) instead run one GEMM per group over the real outputs of all images of a
// chunk, B packed straight from the runs.
#include <algorithm>
#include <vector>

#include <omp.h>

#include "conv_forward_channels.h"
#include "conv_layout.h"
#include "gemm.h"
#include "kernels.h"

namespace convlab::cpu {

namespace {

// Images per chunk of the small-image path: the phased input and the c_out x P output both within the bound.
int64_t column_chunk(const ConvParams& p, const Phased& q) {
  return std::min(images_per_chunk(p, q), std::max<int64_t>(1, kWorkspaceElements / (p.c_out * p.oh * p.ow)));
}

// B[k][j] = run k of the phased chunk xq at real output j = (i, oy, ox), packed into the kc x NR slivers of
// gemm_block: B[k0:k0+kc, n0:n0+nc] (zero past nc). Within a run, the outputs of an image are rows of ow
// contiguous elements (one run of oh*ow when wq == ow), so each sliver row is a few segments, copied in whole
// vectors into a row buffer (the next segment overwrites what one wrote past its end) and stored. A vector
// may also read past its segment: inside the run's slack, except on x itself (q.identity, no slack), whose
// segments end in single elements.
template <class T>
void pack_output_columns(T* buf, const T* xq, const int64_t* run, const ConvParams& p, const Phased& q, int64_t k0,
                         int64_t kc, int64_t n0, int64_t nc) {
  constexpr int L = lanes<T>;
  constexpr int64_t nr = gemm_nr<T>;
  const int64_t pix = p.oh * p.ow, contiguous = q.wq == p.ow ? pix : p.ow;
  struct Segment {
    int64_t src, dst, len;
  };
  for (int64_t s0 = 0; s0 < nc; s0 += nr) {
    const int64_t cols = std::min(nr, nc - s0);
    Segment seg[nr];  // at most one segment per column
    int64_t count = 0;
    for (int64_t j = n0 + s0, end = j + cols; j < end; count++) {
      const int64_t i = j / pix, e = j % pix, len = std::min(contiguous - j % contiguous, end - j);
      seg[count] = {i * p.c_in * q.chan + e / p.ow * q.wq + e % p.ow, j - n0 - s0, len};
      j += len;
    }
    T* dst = buf + s0 * kc;
    for (int64_t kk = 0; kk < kc; kk++) {
      const T* src = xq + run[k0 + kk];
      T line[nr + L];
      for (int64_t s = 0; s < count; s++) {
        const T* from = src + seg[s].src;
        T* to = line + seg[s].dst;
        const int64_t len = seg[s].len, vector_end = q.identity ? len / L * L : (len + L - 1) / L * L;
        int64_t e = 0;
        for (; e < vector_end; e += L) store(to + e, load(from + e));
        for (; e < len; e++) to[e] = from[e];
      }
      std::fill(line + cols, line + nr, T(0));
      for (int v = 0; v < gemm_nv; v++) store(dst + kk * nr + v * L, load(line + v * L));
    }
  }
}

// Column blocks of whole slivers, `per_thread` tasks per thread over the groups: each task packs only its own
// columns of B, so (unlike gemm_blocking, which halves rows first) columns are cut first; rows are halved only
// when there are still fewer tasks than threads.
template <class T>
GemmBlocking column_blocking(int64_t groups, int64_t m, int64_t n, int64_t per_thread) {
  constexpr int64_t nr = gemm_nr<T>;
  const int64_t threads = omp_get_max_threads(), slivers = (n + nr - 1) / nr;
  const int64_t n_blocks = std::clamp<int64_t>((per_thread * threads + groups - 1) / groups, 1, slivers);
  const int64_t nb = (slivers + n_blocks - 1) / n_blocks * nr;
  int64_t mb = (m + gemm_mr - 1) / gemm_mr * gemm_mr;
  while (groups * ((n + nb - 1) / nb) * ((m + mb - 1) / mb) < threads && mb > 64)
    mb = (mb / 2 + gemm_mr - 1) / gemm_mr * gemm_mr;
  return {mb, nb, (m + mb - 1) / mb, (n + nb - 1) / nb};
}

// y[n0 + i][co][j] = yc[co][i*pix + j] + bias[co] for the nn images of a chunk (yc rows ld apart).
template <class T>
void scatter_images(const T* yc, int64_t ld, const T* bias, const ConvParams& p, int64_t n0, int64_t nn, T* y) {
  const int64_t pix = p.oh * p.ow;
#pragma omp parallel for schedule(static)
  for (int64_t ic = 0; ic < nn * p.c_out; ic++) {
    int64_t i = ic / p.c_out, co = ic % p.c_out;
    const T* src = yc + co * ld + i * pix;
    T* dst = y + (n0 + i) * p.c_out * pix + co * pix;
    const T b = bias ? bias[co] : T(0);
    for (int64_t j = 0; j < pix; j++) dst[j] = src[j] + b;
  }
}

// y[i][co][j] = sum_k W[co][k] * X[k][i*pix + j] + bias[co]: one GEMM per group over the P = nn*oh*ow real
// outputs of a chunk, B packed from the runs (no im2col matrix, no garbage columns).
template <class T>
void forward_columns(const T* x, const T* w, const T* bias, const ConvParams& p, const Phased& q, T* y) {
  const int64_t G = p.groups, cog = p.c_out_per_group(), K = p.c_in_per_group() * p.kh * p.kw;
  const std::vector<int64_t> run = run_offsets(p, q);
  const int64_t chunk = column_chunk(p, q);
  for (int64_t n0 = 0; n0 < p.n; n0 += chunk) {
    const int64_t nn = std::min(chunk, p.n - n0), cols_n = nn * p.oh * p.ow, ld = padded_ld<T>(cols_n);
    const T* xq = build_phased<T>(x + n0 * p.c_in * p.h * p.w, nn, p, q);
    T* yc = scratch<T>(slot_output, p.c_out * ld);
    const std::vector<int64_t> c_off = strided_offsets(p.c_out, ld);
    const GemmBlocking bl = column_blocking<T>(G, cog, cols_n, 4);
    const int64_t tasks = G * bl.m_blocks * bl.n_blocks;
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t t = 0; t < tasks; t++) {
      int64_t ni = t % bl.n_blocks, mi = t / bl.n_blocks % bl.m_blocks, g = t / (bl.n_blocks * bl.m_blocks);
      const int64_t* run_g = run.data() + g * K;
      const PackB<T> b = [&](T* buf, int64_t k0, int64_t kc, int64_t b0, int64_t bn) {
        pack_output_columns(buf, xq, run_g, p, q, k0, kc, b0, bn);
      };
      Rows<T> c{yc, c_off.data() + g * cog};
      gemm_block(row_major(w + g * cog * K, cog, K, K), b, c, bl.block(mi, ni, cog, cols_n), Update::store);
    }
    scatter_images(yc, ld, bias, p, n0, nn, y);
  }
}

}  // namespace

template <class T>
void forward_gemm(const T* x, const T* w, const T* bias, const ConvParams& p, T* y) {
  if (few_out_channels<T>(p)) return forward_channels(x, w, bias, p, y);
  const Phased q = phased(p);
  if (small_images<T>(p, q)) return forward_columns(x, w, bias, p, q, y);
  const int64_t G = p.groups, cog = p.c_out_per_group(), K = p.c_in_per_group() * p.kh * p.kw, np = q.np;
  const std::vector<int64_t> b_off = run_offsets(p, q), c_off = strided_offsets(p.c_out, np);
  const bool direct = q.wq == p.ow;  // no garbage columns: the GEMM writes y itself
  const int64_t chunk = images_per_chunk(p, q);
  for (int64_t n0 = 0; n0 < p.n; n0 += chunk) {
    const int64_t nn = std::min(chunk, p.n - n0);
    const T* xq = build_phased<T>(x + n0 * p.c_in * p.h * p.w, nn, p, q);
    T* yq = direct ? y + n0 * p.c_out * np : scratch<T>(slot_output, nn * p.c_out * np);
    const GemmBlocking bl = gemm_blocking<T>(nn * G, cog, np);
    const int64_t tasks = nn * G * bl.m_blocks * bl.n_blocks;
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t t = 0; t < tasks; t++) {
      int64_t ni = t % bl.n_blocks, mi = t / bl.n_blocks % bl.m_blocks, g = t / (bl.n_blocks * bl.m_blocks) % G;
      int64_t i = t / (bl.n_blocks * bl.m_blocks * G);
      Rows<const T> b{xq + i * p.c_in * q.chan, b_off.data() + g * K};
      Rows<T> c{yq + i * p.c_out * np, c_off.data() + g * cog};
      gemm_block(row_major(w + g * cog * K, cog, K, K), b, c, bl.block(mi, ni, cog, np), Update::store);
    }
    finish_output<T>(yq, y + n0 * p.c_out * p.oh * p.ow, bias, nn, p.c_out, p.oh, p.ow, q.wq);
  }
}

template void forward_gemm<float>(const float*, const float*, const float*, const ConvParams&, float*);
template void forward_gemm<double>(const double*, const double*, const double*, const ConvParams&, double*);

void conv_forward(const NDArray& x, const NDArray& w, const NDArray* bias, const ConvParams& p, NDArray& y) {
  const SerialScope serial(conv_work(p) < kSerialWork);
  dispatch_dtype<DTypes::floating>(x.dtype, [&](auto t) {
    using T = decltype(t);
    on_live_taps(w.data<T>(), p, [&](const T* wl, const ConvParams& pl) {
      forward_gemm<T>(x.data<T>(), wl, bias ? bias->data<T>() : nullptr, pl, y.data<T>());
    });
  });
}

}  // namespace convlab::cpu
