// Pooling over contiguous (N, C, H, W) planes: max, average and adaptive average, forward and backward, as
// common/reference.h defines them (max_pool_*_at, avg_pool_*_at).
// One (n, c) plane per OpenMP iteration: backward scatters only inside its own plane, so overlapping
// windows accumulate without races and in a fixed order (results do not depend on the thread count).
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels.h"
#include "simd.h"

namespace convlab::cpu {
namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The taps of a dilated window along one axis that land on real input: positions first + t*dil for
// t < count. The padding holds no taps, so a window may have none at all (dilation over the pad).
struct Taps {
  int64_t first, count;
};

std::vector<Taps> max_taps(int64_t out, int64_t len, int64_t k, int64_t stride, int64_t pad, int64_t dil) {
  std::vector<Taps> taps(out);
  for (int64_t o = 0; o < out; ++o) {
    int64_t start = o * stride - pad;
    int64_t lo = start < 0 ? ceil_div(-start, dil) : 0;
    int64_t hi = start < len ? std::min(k, ceil_div(len - start, dil)) : 0;
    taps[o] = {start + lo * dil, std::max<int64_t>(hi - lo, 0)};
  }
  return taps;
}

// x[argmax of window (oh, ow)] is its maximum, scanned row by row as PyTorch's CPU kernel does: a strictly
// larger value or any NaN takes over, so ties keep the first maximum and, among NaNs, the last one wins.
// Returns the plane index of that element, or -1 for a window without real taps.
template <class T>
int64_t window_argmax(const T* x, int64_t w, int64_t dil_h, int64_t dil_w, Taps row, Taps col) {
  int64_t best_i = -1;
  T best = -std::numeric_limits<T>::infinity();
  for (int64_t th = 0; th < row.count; ++th) {
    int64_t ih = row.first + th * dil_h;
    for (int64_t tw = 0; tw < col.count; ++tw) {
      int64_t i = ih * w + col.first + tw * dil_w;
      T v = x[i];
      if (best_i < 0 || v > best || std::isnan(v)) {
        best = v;
        best_i = i;
      }
    }
  }
  return best_i;
}

// The output columns [lo, hi) whose windows have all kw column taps on real input (none in the padding).
struct Interior {
  int64_t lo, hi;
};

Interior full_columns(const std::vector<Taps>& cols, int64_t kw) {
  int64_t lo = 0, n = static_cast<int64_t>(cols.size());
  while (lo < n && cols[lo].count < kw) ++lo;
  int64_t hi = lo;
  while (hi < n && cols[hi].count == kw) ++hi;
  return {lo, hi};
}

// arg[ow] = window_argmax of every window in one output row (taps `row`). Interior windows run with ow
// innermost so the compiler vectorises across windows; each window still sees its taps in scan order
// (th, then tw) and starts from its first tap, so ties and NaNs resolve exactly as in window_argmax.
// best and tap are scratch rows of length ow; tap_offset[th * kw + tw] is tap (th, tw)'s offset in the
// plane from its window's first row and column (a table: two integer divisions per window to turn a tap
// number back into an offset cost more than the whole scan).
template <class T>
void row_argmax(const T* x, const PoolParams& p, Taps row, const std::vector<Taps>& cols, Interior in, T* best,
                int32_t* tap, const int64_t* tap_offset, int64_t* arg) {
  if (row.count == 0) in.hi = in.lo;  // every window of this row is empty: the scalar path says so
  for (int64_t ow = 0; ow < in.lo; ++ow) arg[ow] = window_argmax(x, p.w, p.dil_h, p.dil_w, row, cols[ow]);
  for (int64_t ow = in.hi; ow < p.ow; ++ow) arg[ow] = window_argmax(x, p.w, p.dil_h, p.dil_w, row, cols[ow]);
  std::fill(best + in.lo, best + in.hi, -std::numeric_limits<T>::infinity());
  std::fill(tap + in.lo, tap + in.hi, 0);
  for (int64_t th = 0; th < row.count; ++th)
    for (int64_t tw = 0; tw < p.kw; ++tw) {
      int32_t t = static_cast<int32_t>(th * p.kw + tw);
      int64_t base = (row.first + th * p.dil_h) * p.w + tw * p.dil_w - p.pad_w;
      for (int64_t ow = in.lo; ow < in.hi; ++ow) {
        T v = x[base + ow * p.stride_w];
        bool take = v > best[ow] || v != v;
        best[ow] = take ? v : best[ow];
        tap[ow] = take ? t : tap[ow];
      }
    }
  const int64_t origin = row.first * p.w - p.pad_w;
  for (int64_t ow = in.lo; ow < in.hi; ++ow) arg[ow] = origin + ow * p.stride_w + tap_offset[tap[ow]];
}

// Runs f(plane, oh, arg) for every output row of every plane, arg holding row_argmax of that row; planes
// are split over OpenMP threads, each with its own scratch rows.
template <class T, class F>
void for_each_argmax_row(const NDArray& x, const PoolParams& p, F&& f) {
  auto rows = max_taps(p.oh, p.h, p.kh, p.stride_h, p.pad_h, p.dil_h);
  auto cols = max_taps(p.ow, p.w, p.kw, p.stride_w, p.pad_w, p.dil_w);
  Interior in = full_columns(cols, p.kw);
  std::vector<int64_t> tap_offset(p.kh * p.kw);
  for (int64_t th = 0; th < p.kh; ++th)
    for (int64_t tw = 0; tw < p.kw; ++tw) tap_offset[th * p.kw + tw] = th * p.dil_h * p.w + tw * p.dil_w;
  const T* xd = x.data<T>();
#pragma omp parallel
  {
    std::vector<T> best(p.ow);
    std::vector<int32_t> tap(p.ow);
    std::vector<int64_t> arg(p.ow);
#pragma omp for schedule(static)
    for (int64_t plane = 0; plane < p.n * p.c; ++plane)
      for (int64_t oh = 0; oh < p.oh; ++oh) {
        row_argmax(xd + plane * p.h * p.w, p, rows[oh], cols, in, best.data(), tap.data(), tap_offset.data(),
                   arg.data());
        f(plane, oh, arg.data());
      }
  }
}

// y[n, c, oh, ow] = max over kh, kw of x[n, c, oh*s_h - p_h + kh*d_h, ow*s_w - p_w + kw*d_w] (real taps only);
// loops: plane (parallel), oh, window taps, ow. A window without real taps gives -inf, as in PyTorch.
// indices, when not null, gets each window's argmax (its plane index, -1 for none) for the backward.
template <class T>
void max_pool_forward_t(const NDArray& x, const PoolParams& p, NDArray& y, NDArray* indices) {
  const T* xd = x.data<T>();
  T* yd = y.data<T>();
  int64_t* id = indices ? indices->data<int64_t>() : nullptr;
  for_each_argmax_row<T>(x, p, [&](int64_t plane, int64_t oh, const int64_t* arg) {
    const T* xp = xd + plane * p.h * p.w;
    const int64_t row = (plane * p.oh + oh) * p.ow;
    for (int64_t ow = 0; ow < p.ow; ++ow)
      yd[row + ow] = arg[ow] < 0 ? -std::numeric_limits<T>::infinity() : xp[arg[ow]];
    if (id) std::copy(arg, arg + p.ow, id + row);
  });
}

// gx[indices[oh, ow]] += gy[oh, ow] (reference::max_pool_backward_at with the forward's argmax table);
// loops: plane (parallel), oh, ow. Several windows may pick one element: their gradients add up, in window
// order. An index outside the plane (-1: a window with no tap on x) selects nothing.
template <class T>
void max_pool_backward_t(const NDArray& indices, const NDArray& gy, const PoolParams& p, NDArray& gx) {
  const int64_t* id = indices.data<int64_t>();
  const T* gyd = gy.data<T>();
  T* gxd = gx.data<T>();
  const int64_t hw = p.h * p.w, ohw = p.oh * p.ow;
#pragma omp parallel for schedule(static)
  for (int64_t plane = 0; plane < p.n * p.c; ++plane) {
    T* gxp = gxd + plane * hw;
    std::fill(gxp, gxp + hw, T(0));
    for (int64_t o = plane * ohw; o < (plane + 1) * ohw; ++o)
      if (static_cast<uint64_t>(id[o]) < static_cast<uint64_t>(hw)) gxp[id[o]] += gyd[o];
  }
}

// A box window along one axis: real input [lo, hi) and this axis' factor of the divisor.
struct Span {
  int64_t lo, hi, divisor;
};

// PyTorch's average-pool window: [start, start + k) is first cut at the end of the right padding, which
// fixes the divisor with count_include_pad (ceil_mode windows can run past it), then cut to the input.
std::vector<Span> avg_spans(int64_t out, int64_t len, int64_t k, int64_t stride, int64_t pad,
                            bool count_include_pad) {
  std::vector<Span> spans(out);
  for (int64_t o = 0; o < out; ++o) {
    int64_t start = o * stride - pad;
    int64_t end = std::min(start + k, len + pad);
    int64_t lo = std::max<int64_t>(start, 0), hi = std::min(end, len);
    spans[o] = {lo, hi, count_include_pad ? end - start : hi - lo};
  }
  return spans;
}

// Adaptive window i covers [floor(i*len/out), ceil((i+1)*len/out)) and averages exactly those elements.
std::vector<Span> adaptive_spans(int64_t out, int64_t len) {
  std::vector<Span> spans(out);
  for (int64_t o = 0; o < out; ++o) {
    int64_t lo = o * len / out, hi = ceil_div((o + 1) * len, out);
    spans[o] = {lo, hi, hi - lo};
  }
  return spans;
}

// Sum of a contiguous run in 4 vectors of partial sums: one running sum would make every add wait for the
// previous one (4 cycles each), which left global average pooling of 112x112 planes 6x behind PyTorch, and
// 8 scalar partial sums were not vectorised by the compiler (1.6 cycles per element). Short runs (3x3
// windows) keep the plain loop: combining the partial sums would cost more than it saves.
template <class T>
T run_sum(const T* a, int64_t n) {
  constexpr int L = lanes<T>;
  T sum = 0;
  int64_t i = 0;
  if (n >= 4 * L) {
    Vec<T> part[4] = {};
    for (; i + 4 * L <= n; i += 4 * L)
      for (int j = 0; j < 4; ++j) part[j] += load(a + i + j * L);
    sum = hsum<T>((part[0] + part[1]) + (part[2] + part[3]));
  }
  for (; i < n; ++i) sum += a[i];
  return sum;
}

// y[n, c, oh, ow] = sum of x[n, c, rows[oh].lo:hi, cols[ow].lo:hi] / (rows[oh].divisor * cols[ow].divisor),
// separably: per output row, the window's rows are summed column by column into colsum (vectorised along
// w), then each output sums its window's columns of colsum. A 3x3 window costs 3 vector adds per input
// column and 3 scalar adds per output instead of 9 scalar adds per output. Loops: plane (parallel), oh,
// window rows, iw; then ow, window columns. A window of whole rows (global pooling) is summed as one run.
template <class T>
void box_pool_forward(const NDArray& x, const PoolParams& p, const std::vector<Span>& rows,
                      const std::vector<Span>& cols, NDArray& y) {
  const T* xd = x.data<T>();
  T* yd = y.data<T>();
#pragma omp parallel
  {
    std::vector<T> colsum(p.w);
#pragma omp for schedule(static)
    for (int64_t plane = 0; plane < p.n * p.c; ++plane) {
      const T* xp = xd + plane * p.h * p.w;
      T* yp = yd + plane * p.oh * p.ow;
      for (int64_t oh = 0; oh < p.oh; ++oh) {
        const Span& r = rows[oh];
        if (p.ow == 1 && cols[0].lo == 0 && cols[0].hi == p.w) {  // whole rows (global pooling): one run
          yp[oh] = run_sum(xp + r.lo * p.w, (r.hi - r.lo) * p.w) / T(r.divisor * cols[0].divisor);
          continue;
        }
        std::fill(colsum.begin(), colsum.end(), T(0));
        for (int64_t ih = r.lo; ih < r.hi; ++ih)
          for (int64_t iw = 0; iw < p.w; ++iw) colsum[iw] += xp[ih * p.w + iw];
        for (int64_t ow = 0; ow < p.ow; ++ow) {
          const Span& c = cols[ow];
          yp[oh * p.ow + ow] = run_sum(colsum.data() + c.lo, c.hi - c.lo) / T(r.divisor * c.divisor);
        }
      }
    }
  }
}

// gx[n, c, ih, iw] = sum over windows (oh, ow) holding (ih, iw) of gy[n, c, oh, ow] / divisor(oh, ow), the
// adjoint of the same two steps: per output row, each gy / divisor is spread over its window's columns of
// rowsum, then rowsum is added to each of the window's rows of gx (vectorised along w). Loops: plane
// (parallel), oh, ow, window columns; then window rows, iw.
template <class T>
void box_pool_backward(const NDArray& gy, const PoolParams& p, const std::vector<Span>& rows,
                       const std::vector<Span>& cols, NDArray& gx) {
  const T* gyd = gy.data<T>();
  T* gxd = gx.data<T>();
#pragma omp parallel
  {
    std::vector<T> rowsum(p.w);
#pragma omp for schedule(static)
    for (int64_t plane = 0; plane < p.n * p.c; ++plane) {
      const T* gyp = gyd + plane * p.oh * p.ow;
      T* gxp = gxd + plane * p.h * p.w;
      std::fill(gxp, gxp + p.h * p.w, T(0));
      for (int64_t oh = 0; oh < p.oh; ++oh) {
        const Span& r = rows[oh];
        std::fill(rowsum.begin(), rowsum.end(), T(0));
        for (int64_t ow = 0; ow < p.ow; ++ow) {
          const Span& c = cols[ow];
          const T g = gyp[oh * p.ow + ow] / T(r.divisor * c.divisor);
          for (int64_t iw = c.lo; iw < c.hi; ++iw) rowsum[iw] += g;
        }
        for (int64_t ih = r.lo; ih < r.hi; ++ih)
          for (int64_t iw = 0; iw < p.w; ++iw) gxp[ih * p.w + iw] += rowsum[iw];
      }
    }
  }
}

}  // namespace

void max_pool_forward(const NDArray& x, const PoolParams& p, NDArray& y, NDArray* indices) {
  dispatch_dtype<DTypes::floating>(x.dtype, [&](auto t) { max_pool_forward_t<decltype(t)>(x, p, y, indices); });
}

void max_pool_backward(const NDArray& indices, const NDArray& gy, const PoolParams& p, NDArray& gx) {
  dispatch_dtype<DTypes::floating>(gy.dtype, [&](auto t) { max_pool_backward_t<decltype(t)>(indices, gy, p, gx); });
}

void avg_pool_forward(const NDArray& x, const PoolParams& p, NDArray& y) {
  auto rows = avg_spans(p.oh, p.h, p.kh, p.stride_h, p.pad_h, p.count_include_pad);
  auto cols = avg_spans(p.ow, p.w, p.kw, p.stride_w, p.pad_w, p.count_include_pad);
  dispatch_dtype<DTypes::floating>(x.dtype, [&](auto t) { box_pool_forward<decltype(t)>(x, p, rows, cols, y); });
}

void avg_pool_backward(const NDArray& gy, const PoolParams& p, NDArray& gx) {
  auto rows = avg_spans(p.oh, p.h, p.kh, p.stride_h, p.pad_h, p.count_include_pad);
  auto cols = avg_spans(p.ow, p.w, p.kw, p.stride_w, p.pad_w, p.count_include_pad);
  dispatch_dtype<DTypes::floating>(gy.dtype, [&](auto t) { box_pool_backward<decltype(t)>(gy, p, rows, cols, gx); });
}

void adaptive_avg_pool_forward(const NDArray& x, const PoolParams& p, NDArray& y) {
  auto rows = adaptive_spans(p.oh, p.h), cols = adaptive_spans(p.ow, p.w);
  dispatch_dtype<DTypes::floating>(x.dtype, [&](auto t) { box_pool_forward<decltype(t)>(x, p, rows, cols, y); });
}

void adaptive_avg_pool_backward(const NDArray& gy, const PoolParams& p, NDArray& gx) {
  auto rows = adaptive_spans(p.oh, p.h), cols = adaptive_spans(p.ow, p.w);
  dispatch_dtype<DTypes::floating>(gy.dtype, [&](auto t) { box_pool_backward<decltype(t)>(gy, p, rows, cols, gx); });
}

}  // namespace convlab::cpu
