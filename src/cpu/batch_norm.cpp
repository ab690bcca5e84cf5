// Batch norm over contiguous (N, C, S) arrays (S = product of the spatial dims), as backend.h defines it.
// Channels are taken in blocks, one block per OpenMP iteration, in one of two forms chosen by S alone:
// - long channels (S >= kRowMin): a block is up to a thread's share of the channels, swept image by image
//   and, within an image, row by row (a row: one channel's S elements), with each row's partial sums and
//   constants in registers; a channel's sum adds its rows' sums in image order, whatever the block size;
// - short channels (S < kRowMin: 8x8 maps and smaller, BatchNorm1d): a block of cb channels is, for each
//   image, one contiguous run of cb * S <= kLanes elements, one per lane: every sweep adds element-wise into
//   per-lane partial sums (double) or applies per-lane copies of the constants, so there is no horizontal sum
//   per row of 1-64 elements (which cost 7 ns an element on 2x2 maps). A channel's sum is its lanes' partial
//   sums added in lane order, each lane summed over the images in order: the result does not depend on cb,
//   so cb may follow the thread count.
// Results do not depend on the thread count. The elementwise sweep is y = x * scale + shift with per-channel
// scale and shift, the form PyTorch's CPU kernel uses.
#include <omp.h>

#include <algorithm>
#include <cmath>

#include "kernels.h"

namespace convlab::cpu {
namespace {

// Lanes per block: 256 doubles of partial sums (2 KiB) per running statistic stay in L1 beside the data.
// Channels of kRowMin elements or more run as rows: there the lanes' loads and stores of partial sums and
// constants measured up to 2x slower than registers (stats of 32x128x16x16: 0.62 vs 0.30 ms). Rows run in
// blocks of up to kRowBlockMax channels (their per-channel sums and constants on the stack).
constexpr int64_t kLanes = 256, kRowMin = 128, kRowBlockMax = 64;

struct Dims {
  int64_t n, c, s;
};

Dims dims_of(const NDArray& x) { return {x.shape[0], x.shape[1], x.shape[2]}; }

// The block layout: cb channels of width = S lanes each (short channels), cb kept small enough that every
// thread gets a few blocks; or, for rows, a thread's share of the channels (at most kRowBlockMax), swept image
// by image so that each image's rows of the block are one run of memory. One channel per block (its rows 4 KiB
// on 32x32 maps, C * S elements apart, re-read from L2 in the second sweep) ran at half the memory rate of an
// element-wise op; the runs stream (1 thread, 32x64x32x32: forward 2.6-2.8 -> 1.2-1.4 ms, backward 2.5-3.2 ->
// 1.8-2.5), though a block's second sweep now comes from L3 or memory instead of L2.
struct Blocks {
  int64_t cb, width;
  bool rows;
  int64_t count(const Dims& d) const { return (d.c + cb - 1) / cb; }
};

Blocks blocks_of(const Dims& d) {
  if (d.s >= kRowMin) {
    const int64_t per_thread = (d.c + omp_get_max_threads() - 1) / omp_get_max_threads();
    return {std::min(per_thread, kRowBlockMax), d.s, true};
  }
  const int64_t width = std::max<int64_t>(d.s, 1);
  const int64_t per_thread = (d.c + 4 * omp_get_max_threads() - 1) / (4 * omp_get_max_threads());
  return {std::max<int64_t>(1, std::min(kLanes / width, per_thread)), width, false};
}

// One block: channels [c0, c0 + channels), `lanes` = channels * width lanes.
struct Block {
  int64_t c0, channels, lanes;
};

// block(b) for every block, in parallel when the array is large; a small one runs on the calling thread
// outside any OpenMP region (even a one-thread region costs ~1 us: see elementwise.cpp).
template <class Body>
void for_each_block(const Dims& d, const Blocks& bl, Body body) {
  const int64_t count = bl.count(d);
  auto run = [&](int64_t i) {
    const int64_t c0 = i * bl.cb, channels = std::min(bl.cb, d.c - c0);
    body(Block{c0, channels, channels * bl.width});
  };
  if (d.n * d.c * d.s < kParallelMin) {
    for (int64_t i = 0; i < count; ++i) run(i);
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < count; ++i) run(i);
}

// lane_run(off, len) for each image's run of the block (short channels): element off + j sits on lane j.
template <class LaneRun>
void for_each_piece(const Dims& d, const Block& blk, LaneRun lane_run) {
  for (int64_t n = 0; n < d.n; ++n) lane_run((n * d.c + blk.c0) * d.s, blk.lanes);
}

// row_run(k, off) for each of the block's channels' N rows of S elements (long channels), image by image:
// the block's rows of one image are one run of memory.
template <class RowRun>
void for_each_row(const Dims& d, const Block& blk, RowRun row_run) {
  for (int64_t n = 0; n < d.n; ++n)
    for (int64_t k = 0; k < blk.channels; ++k) row_run(k, (n * d.c + blk.c0 + k) * d.s);
}

// Channel k of the block owns lanes [k * width, (k + 1) * width): its total over them, in lane order.
double channel_total(const double* part, const Blocks& bl, int64_t k) {
  double sum = 0;
  for (int64_t j = k * bl.width; j < (k + 1) * bl.width; ++j) sum += part[j];
  return sum;
}

// Sets lanes of channel k to v for k in the block: per-lane copies of per-channel constants.
template <class T, class PerChannel>
void spread(T* lane, const Blocks& bl, const Block& blk, PerChannel value) {
  for (int64_t k = 0; k < blk.channels; ++k) std::fill(lane + k * bl.width, lane + (k + 1) * bl.width, T(value(k)));
}

// Two passes: the mean, then the sum of squares about it (no cancellation, unlike E[x^2] - mean^2); the
// second pass re-reads the channel or block from L2.
template <class T>
void stats_t(const NDArray& x, NDArray& mean, NDArray& var) {
  const Dims d = dims_of(x);
  const Blocks bl = blocks_of(d);
  const T* xd = x.data<T>();
  T *md = mean.data<T>(), *vd = var.data<T>();
  const double count = double(d.n * d.s);
  for_each_block(d, bl, [&](const Block& blk) {
    if (bl.rows) {
      double sums[kRowBlockMax] = {}, sqs[kRowBlockMax] = {}, mus[kRowBlockMax];
      for_each_row(d, blk, [&](int64_t k, int64_t off) {
        const T* row = xd + off;
        double sum = sums[k];
#pragma omp simd reduction(+ : sum)
        for (int64_t i = 0; i < d.s; ++i) sum += double(row[i]);
        sums[k] = sum;
      });
      for (int64_t k = 0; k < blk.channels; ++k) mus[k] = sums[k] / count;
      for_each_row(d, blk, [&](int64_t k, int64_t off) {
        const T* row = xd + off;
        const double mu = mus[k];
        double sq = sqs[k];
#pragma omp simd reduction(+ : sq)
        for (int64_t i = 0; i < d.s; ++i) {
          const double v = double(row[i]) - mu;
          sq += v * v;
        }
        sqs[k] = sq;
      });
      for (int64_t k = 0; k < blk.channels; ++k) {
        md[blk.c0 + k] = T(mus[k]);
        vd[blk.c0 + k] = T(sqs[k] / count);
      }
      return;
    }
    double part[kLanes] = {}, mu[kLanes];
    for_each_piece(d, blk, [&](int64_t off, int64_t len) {
      const T* xr = xd + off;
#pragma omp simd
      for (int64_t j = 0; j < len; ++j) part[j] += double(xr[j]);
    });
    spread(mu, bl, blk, [&](int64_t k) { return channel_total(part, bl, k) / count; });
    std::fill(part, part + blk.lanes, 0.0);
    for_each_piece(d, blk, [&](int64_t off, int64_t len) {
      const T* xr = xd + off;
#pragma omp simd
      for (int64_t j = 0; j < len; ++j) {
        const double v = double(xr[j]) - mu[j];
        part[j] += v * v;
      }
    });
    for (int64_t k = 0; k < blk.channels; ++k) {
      md[blk.c0 + k] = T(mu[k * bl.width]);
      vd[blk.c0 + k] = T(channel_total(part, bl, k) / count);
    }
  });
}

template <class T>
void apply_t(const NDArray& x, const NDArray& mean, const NDArray& var, const NDArray* w, const NDArray* b,
             double eps, NDArray& y) {
  const Dims d = dims_of(x);
  const Blocks bl = blocks_of(d);
  const T *xd = x.data<T>(), *md = mean.data<T>(), *vd = var.data<T>();
  const T *wd = w ? w->data<T>() : nullptr, *bd = b ? b->data<T>() : nullptr;
  T* yd = y.data<T>();
  auto scale = [&](int64_t c) {
    const double invstd = 1.0 / std::sqrt(double(vd[c]) + eps);
    return wd ? invstd * double(wd[c]) : invstd;
  };
  auto shift = [&](int64_t c) { return (bd ? double(bd[c]) : 0.0) - double(md[c]) * scale(c); };
  for_each_block(d, bl, [&](const Block& blk) {
    if (bl.rows) {
      T scs[kRowBlockMax], shs[kRowBlockMax];
      for (int64_t k = 0; k < blk.channels; ++k) scs[k] = T(scale(blk.c0 + k)), shs[k] = T(shift(blk.c0 + k));
      for_each_row(d, blk, [&](int64_t k, int64_t off) {
        const T* xr = xd + off;
        T* yr = yd + off;
        const T sc = scs[k], sh = shs[k];
#pragma omp simd
        for (int64_t i = 0; i < d.s; ++i) yr[i] = xr[i] * sc + sh;
      });
      return;
    }
    T sc[kLanes], sh[kLanes];
    spread(sc, bl, blk, [&](int64_t k) { return scale(blk.c0 + k); });
    spread(sh, bl, blk, [&](int64_t k) { return shift(blk.c0 + k); });
    for_each_piece(d, blk, [&](int64_t off, int64_t len) {
      const T* xr = xd + off;
      T* yr = yd + off;
#pragma omp simd
      for (int64_t j = 0; j < len; ++j) yr[j] = xr[j] * sc[j] + sh[j];
    });
  });
}

// gx = gy * a + x * k + shift: backward's terms folded into per-channel constants.
struct GradTerms {
  double a, k, shift;
};

// Per channel, with xhat = (x - mean) * invstd and M = N * S elements: gb = sum(gy), gw = sum(gy * xhat);
// training: gx = invstd * w * (gy - gb / M - xhat * gw / M); eval (mean and var constants): gx = invstd * w * gy.
// One reduction pass and one elementwise pass per channel or block, the second from L2.
template <class T>
void backward_t(const NDArray& x, const NDArray& gy, const NDArray& mean, const NDArray& var, const NDArray* w,
                double eps, bool training, NDArray& gx, NDArray& gw, NDArray& gb) {
  const Dims d = dims_of(x);
  const Blocks bl = blocks_of(d);
  const T *xd = x.data<T>(), *gyd = gy.data<T>(), *md = mean.data<T>(), *vd = var.data<T>();
  const T* wd = w ? w->data<T>() : nullptr;
  T *gxd = gx.data<T>(), *gwd = gw.data<T>(), *gbd = gb.data<T>();
  const double count = double(d.n * d.s);
  // Channel c's gb and gw from its sum(gy) and sum(gy * (x - mean)), and its gx terms.
  auto finish = [&](int64_t c, double sum_g, double sum_gx) {
    const double invstd = 1.0 / std::sqrt(double(vd[c]) + eps), scale = invstd * (wd ? double(wd[c]) : 1.0);
    const double k = -scale * invstd * invstd * sum_gx / count;
    gbd[c] = T(sum_g);
    gwd[c] = T(sum_gx * invstd);
    return GradTerms{scale, k, -scale * sum_g / count - double(md[c]) * k};
  };
  for_each_block(d, bl, [&](const Block& blk) {
    if (bl.rows) {
      double sums_g[kRowBlockMax] = {}, sums_gx[kRowBlockMax] = {};
      for_each_row(d, blk, [&](int64_t k, int64_t off) {
        const T *xr = xd + off, *gr = gyd + off;
        const double mu = double(md[blk.c0 + k]);
        double sum_g = sums_g[k], sum_gx = sums_gx[k];
#pragma omp simd reduction(+ : sum_g, sum_gx)
        for (int64_t i = 0; i < d.s; ++i) {
          sum_g += double(gr[i]);
          sum_gx += double(gr[i]) * (double(xr[i]) - mu);
        }
        sums_g[k] = sum_g, sums_gx[k] = sum_gx;
      });
      T tas[kRowBlockMax], tks[kRowBlockMax], tss[kRowBlockMax];
      for (int64_t k = 0; k < blk.channels; ++k) {
        const GradTerms t = finish(blk.c0 + k, sums_g[k], sums_gx[k]);
        tas[k] = T(t.a), tks[k] = T(t.k), tss[k] = T(t.shift);
      }
      for_each_row(d, blk, [&](int64_t k, int64_t off) {
        const T *xr = xd + off, *gr = gyd + off;
        T* gxr = gxd + off;
        const T ta = tas[k], tk = tks[k], ts = tss[k];
        if (training) {
#pragma omp simd
          for (int64_t i = 0; i < d.s; ++i) gxr[i] = gr[i] * ta + xr[i] * tk + ts;
        } else {  // x is in no term: a NaN or inf in x must not reach gx (PyTorch's eval gradient)
#pragma omp simd
          for (int64_t i = 0; i < d.s; ++i) gxr[i] = gr[i] * ta;
        }
      });
      return;
    }
    double sum_g[kLanes] = {}, sum_gx[kLanes] = {}, mu[kLanes];
    spread(mu, bl, blk, [&](int64_t k) { return double(md[blk.c0 + k]); });
    for_each_piece(d, blk, [&](int64_t off, int64_t len) {
      const T *xr = xd + off, *gr = gyd + off;
#pragma omp simd
      for (int64_t j = 0; j < len; ++j) {
        sum_g[j] += double(gr[j]);
        sum_gx[j] += double(gr[j]) * (double(xr[j]) - mu[j]);
      }
    });
    T ta[kLanes], tk[kLanes], ts[kLanes];
    for (int64_t k = 0; k < blk.channels; ++k) {
      const GradTerms t = finish(blk.c0 + k, channel_total(sum_g, bl, k), channel_total(sum_gx, bl, k));
      std::fill(ta + k * bl.width, ta + (k + 1) * bl.width, T(t.a));
      std::fill(tk + k * bl.width, tk + (k + 1) * bl.width, T(t.k));
      std::fill(ts + k * bl.width, ts + (k + 1) * bl.width, T(t.shift));
    }
    for_each_piece(d, blk, [&](int64_t off, int64_t len) {
      const T *xr = xd + off, *gr = gyd + off;
      T* gxr = gxd + off;
      if (training) {
#pragma omp simd
        for (int64_t j = 0; j < len; ++j) gxr[j] = gr[j] * ta[j] + xr[j] * tk[j] + ts[j];
      } else {  // as in the row form: x stays out of eval's gx
#pragma omp simd
        for (int64_t j = 0; j < len; ++j) gxr[j] = gr[j] * ta[j];
      }
    });
  });
}

}  // namespace

void batch_norm_stats(const NDArray& x, NDArray& mean, NDArray& var) {
  dispatch_dtype<DTypes::floating>(x.dtype, [&](auto t) { stats_t<decltype(t)>(x, mean, var); });
}

void batch_norm_apply(const NDArray& x, const NDArray& mean, const NDArray& var, const NDArray* w,
                      const NDArray* b, double eps, NDArray& y) {
  dispatch_dtype<DTypes::floating>(x.dtype, [&](auto t) { apply_t<decltype(t)>(x, mean, var, w, b, eps, y); });
}

void batch_norm_backward(const NDArray& x, const NDArray& gy, const NDArray& mean, const NDArray& var,
                         const NDArray* w, double eps, bool training, NDArray& gx, NDArray& gw, NDArray& gb) {
  dispatch_dtype<DTypes::floating>(x.dtype, [&](auto t) {
    backward_t<decltype(t)>(x, gy, mean, var, w, eps, training, gx, gw, gb);
  });
}

}  // namespace convlab::cpu
