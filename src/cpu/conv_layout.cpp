// Building and undoing the stride-phased layout of conv_layout.h; one OpenMP task per (image, channel).
#include "conv_layout.h"

#include <algorithm>

#include "workspace.h"

namespace convlab::cpu {

namespace {
int64_t ceil_div(int64_t a, int64_t b) { return a >= 0 ? (a + b - 1) / b : -((-a) / b); }
}  // namespace

Phased phased(const ConvParams& p, bool allow_identity) {
  Phased q;
  q.sh = p.stride_h;
  q.sw = p.stride_w;
  q.hq = p.oh + (p.kh - 1) * p.dil_h / q.sh;
  q.wq = p.ow + (p.kw - 1) * p.dil_w / q.sw;
  q.identity = allow_identity && p.kh == 1 && p.kw == 1 && q.sh == 1 && q.sw == 1 && p.pad_top == 0 &&
               p.pad_left == 0 && p.oh == p.h && p.ow == p.w;
  q.plane = q.identity ? p.h * p.w : (q.hq * q.wq + q.wq + 64 + 15) / 16 * 16;
  q.chan = q.sh * q.sw * q.plane;
  q.np = p.oh * q.wq;
  q.used.assign(q.sh * q.sw, 0);
  for (int64_t i = 0; i < p.kh; i++) {
    for (int64_t j = 0; j < p.kw; j++) {
      int64_t a = i * p.dil_h % q.sh, b = j * p.dil_w % q.sw;
      q.used[a * q.sw + b] = 1;
      q.tap.push_back((a * q.sw + b) * q.plane + i * p.dil_h / q.sh * q.wq + j * p.dil_w / q.sw);
    }
  }
  return q;
}

int64_t images_per_chunk(const ConvParams& p, const Phased& q) {
  return std::clamp<int64_t>(kWorkspaceElements / std::max<int64_t>(p.c_in * q.chan, 1), 1, std::max<int64_t>(p.n, 1));
}

namespace {
// [lo, hi) of the kernel positions 0 <= k < taps whose tap offset k*dil - pad lands inside x for some output.
void live_range(int64_t taps, int64_t dil, int64_t pad, int64_t stride, int64_t in, int64_t out, int64_t& lo,
                int64_t& hi) {
  auto live = [&](int64_t k) {
    int64_t o_lo, o_hi;
    in_range(k * dil - pad, stride, in, out, o_lo, o_hi);
    return o_lo < o_hi;
  };
  for (lo = 0; lo < taps && !live(lo);) lo++;
  for (hi = taps; hi > lo && !live(hi - 1);) hi--;
}
}  // namespace

bool mostly_padding(const ConvParams& p) {
  int64_t rows = 0, cols = 0;  // live tap-output pairs = (sum over kernel rows) x (sum over kernel columns)
  for (int64_t t = 0; t < p.kh; t++) {
    int64_t lo, hi;
    in_range(t * p.dil_h - p.pad_top, p.stride_h, p.h, p.oh, lo, hi);
    rows += hi - lo;
  }
  for (int64_t t = 0; t < p.kw; t++) {
    int64_t lo, hi;
    in_range(t * p.dil_w - p.pad_left, p.stride_w, p.w, p.ow, lo, hi);
    cols += hi - lo;
  }
  return p.oh * p.ow > 0 && 3 * rows * cols <= 2 * p.kh * p.kw * p.oh * p.ow;
}

LiveTaps live_taps(const ConvParams& p) {
  LiveTaps t;
  live_range(p.kh, p.dil_h, p.pad_top, p.stride_h, p.h, p.oh, t.kh0, t.kh1);
  live_range(p.kw, p.dil_w, p.pad_left, p.stride_w, p.w, p.ow, t.kw0, t.kw1);
  return t;
}

ConvParams cropped(const ConvParams& p, const LiveTaps& live) {
  ConvParams c = p;
  c.kh = live.kh1 - live.kh0, c.kw = live.kw1 - live.kw0;
  c.pad_top -= live.kh0 * p.dil_h, c.pad_left -= live.kw0 * p.dil_w;
  return c;
}

template <class T>
std::vector<T> crop_weight(const T* w, const ConvParams& p, const LiveTaps& live) {
  const int64_t kh = live.kh1 - live.kh0, kw = live.kw1 - live.kw0;
  std::vector<T> out(p.c_out * p.c_in_per_group() * kh * kw);
  for (int64_t r = 0; r < p.c_out * p.c_in_per_group(); r++)
    for (int64_t i = 0; i < kh; i++)
      std::copy_n(w + (r * p.kh + live.kh0 + i) * p.kw + live.kw0, kw, out.data() + (r * kh + i) * kw);
  return out;
}

std::vector<int64_t> run_offsets(const ConvParams& p, const Phased& q) {
  const int64_t taps = p.kh * p.kw;
  std::vector<int64_t> off(p.c_in * taps);
  for (int64_t c = 0; c < p.c_in; c++)
    for (int64_t t = 0; t < taps; t++) off[c * taps + t] = c * q.chan + q.tap[t];
  return off;
}

std::vector<int64_t> strided_offsets(int64_t rows, int64_t stride) {
  std::vector<int64_t> off(rows);
  for (int64_t r = 0; r < rows; r++) off[r] = r * stride;
  return off;
}

// row[v] = in[v * sw] for v in [lo, hi), reading no further than in[avail - 1]. Stride 2 (the strided layers
// of ResNet, Inception, DCGAN) runs in whole vectors: its element-by-element gather was 6-9 % of the profile
// of a stride-2 forward (Inception 6a's 3x3/2 on 35x35).
template <class T>
void copy_strided(const T* in, T* row, int64_t sw, int64_t lo, int64_t hi, int64_t avail) {
  constexpr int L = lanes<T>;
  int64_t v = lo;
  if (sw == 2)
    for (; v + L <= hi && 2 * (v + L) <= avail; v += L)
      store(row + v, even_lanes<T>(load(in + 2 * v), load(in + 2 * v + L)));
  for (; v < hi; v++) row[v] = in[v * sw];
}

template <class T>
void build_phased_channel(const T* src, T* out, const ConvParams& p, const Phased& q) {
  for (int64_t a = 0; a < q.sh; a++) {
    for (int64_t b = 0; b < q.sw; b++) {
      if (!q.used[a * q.sw + b]) continue;
      T* dst = out + (a * q.sw + b) * q.plane;
      // Columns [v_lo, v_hi) of a phase row land inside x.
      int64_t v_lo = std::clamp<int64_t>(ceil_div(p.pad_left - b, q.sw), 0, q.wq);
      int64_t v_hi = std::clamp<int64_t>(ceil_div(p.w + p.pad_left - b, q.sw), v_lo, q.wq);
      for (int64_t u = 0; u < q.hq; u++) {
        T* row = dst + u * q.wq;
        int64_t iy = u * q.sh + a - p.pad_top;
        if (iy < 0 || iy >= p.h) {
          std::fill(row, row + q.wq, T(0));
          continue;
        }
        const T* in = src + iy * p.w + b - p.pad_left;
        std::fill(row, row + v_lo, T(0));
        if (q.sw == 1) std::copy(in + v_lo, in + v_hi, row + v_lo);
        else copy_strided(in, row, q.sw, v_lo, v_hi, src + p.h * p.w - in);
        std::fill(row + v_hi, row + q.wq, T(0));
      }
      std::fill(dst + q.hq * q.wq, dst + q.plane, T(0));
    }
  }
}

template <class T>
const T* build_phased(const T* x, int64_t nn, const ConvParams& p, const Phased& q) {
  if (q.identity) return x;
  T* out = scratch<T>(slot_input, nn * p.c_in * q.chan);
#pragma omp parallel for schedule(static)
  for (int64_t nc = 0; nc < nn * p.c_in; nc++) build_phased_channel(x + nc * p.h * p.w, out + nc * q.chan, p, q);
  return out;
}

template <class T>
const T* extend_grad_output(const T* gy, int64_t nn, const ConvParams& p, const Phased& q, int64_t ld) {
  if (q.wq == p.ow && ld == q.np) return gy;
  T* out = scratch<T>(slot_output, nn * p.c_out * ld);
#pragma omp parallel for schedule(static)
  for (int64_t nc = 0; nc < nn * p.c_out; nc++) {
    T* dst = out + nc * ld;
    for (int64_t oy = 0; oy < p.oh; oy++) {
      std::copy(gy + (nc * p.oh + oy) * p.ow, gy + (nc * p.oh + oy + 1) * p.ow, dst + oy * q.wq);
      std::fill(dst + oy * q.wq + p.ow, dst + (oy + 1) * q.wq, T(0));
    }
    std::fill(dst + q.np, dst + ld, T(0));
  }
  return out;
}

template <class T>
void unphase_channel(const T* gxq, T* gx, const ConvParams& p, const Phased& q) {
  for (int64_t iy = 0; iy < p.h; iy++) {
    T* dst = gx + iy * p.w;
    int64_t a = (iy + p.pad_top) % q.sh, u = (iy + p.pad_top) / q.sh;
    std::fill(dst, dst + p.w, T(0));
    if (u >= q.hq) continue;
    // Columns ix = ix0 + sw*v' of phase b read v = (ix0 + pl)/sw + v', a unit-stride run.
    for (int64_t b = 0; b < q.sw; b++) {
      int64_t ix0 = ((b - p.pad_left) % q.sw + q.sw) % q.sw;
      int64_t v0 = (ix0 + p.pad_left) / q.sw;
      int64_t count = std::min((p.w - ix0 + q.sw - 1) / q.sw, q.wq - v0);
      const T* src = gxq + (a * q.sw + b) * q.plane + u * q.wq + v0;
      for (int64_t j = 0; j < count; j++) dst[ix0 + j * q.sw] = src[j];
    }
  }
}

template <class T>
void unphase(const T* gxq, T* gx, int64_t nn, const ConvParams& p, const Phased& q) {
#pragma omp parallel for schedule(static)
  for (int64_t nc = 0; nc < nn * p.c_in; nc++) unphase_channel(gxq + nc * q.chan, gx + nc * p.h * p.w, p, q);
}

// One plane of finish_output.
template <class T>
void finish_plane(const T* yq, T* y, T b, int64_t oh, int64_t ow, int64_t wq) {
  for (int64_t oy = 0; oy < oh; oy++)
    for (int64_t ox = 0; ox < ow; ox++) y[oy * ow + ox] = yq[oy * wq + ox] + b;
}

template <class T>
void finish_output(const T* yq, T* y, const T* bias, int64_t nn, int64_t c_out, int64_t oh, int64_t ow, int64_t wq) {
  if (yq == y && !bias) return;
  auto plane = [&](int64_t nc) {
    finish_plane(yq + nc * oh * wq, y + nc * oh * ow, bias ? bias[nc % c_out] : T(0), oh, ow, wq);
  };
  // One plane is the depthwise kernels' call from inside their own parallel loop: even a one-thread
  // region costs an OpenMP team and a futex wake-up per call (~1 us), thousands of times per layer.
  if (nn * c_out == 1) return plane(0);
#pragma omp parallel for schedule(static)
  for (int64_t nc = 0; nc < nn * c_out; nc++) plane(nc);
}

#define CONVLAB_LAYOUT(T)                                                                                    \
  template const T* build_phased<T>(const T*, int64_t, const ConvParams&, const Phased&);                   \
  template void build_phased_channel<T>(const T*, T*, const ConvParams&, const Phased&);                   \
  template const T* extend_grad_output<T>(const T*, int64_t, const ConvParams&, const Phased&, int64_t);    \
  template void unphase<T>(const T*, T*, int64_t, const ConvParams&, const Phased&);                        \
  template void unphase_channel<T>(const T*, T*, const ConvParams&, const Phased&);                         \
  template void finish_output<T>(const T*, T*, const T*, int64_t, int64_t, int64_t, int64_t, int64_t);     \
  template std::vector<T> crop_weight<T>(const T*, const ConvParams&, const LiveTaps&);
CONVLAB_LAYOUT(float)
CONVLAB_LAYOUT(double)

}  // namespace convlab::cpu
