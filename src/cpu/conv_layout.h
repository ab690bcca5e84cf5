// The stride-phased, zero-padded input layout all CPU convolution passes share. The padded input is split
// into its stride phases,
//   xq[c][a][b][u][v] = x[c][u*sh + a - pt][v*sw + b - pl]   (0 outside x; u < hq, v < wq),
// channel stride chan = sh*sw*plane, so that on the "extended" output grid e = oy*wq + ox (np = oh*wq
// columns; ox < wq, only ox < ow is a real output) kernel tap (kh_i, kw_i) reads ONE contiguous run per
// channel: xq[c][phase(tap)][e + shift(tap)]. The runs are the rows of an implicit im2col matrix that is
// never materialised (k = (ci, tap)):
//   forward          y[co][e]   = sum_k W[co][k] * X[k][e]      conv_forward.cpp: GEMM, B rows = runs
//   backward-input   gxq[k][e] += sum_co W[co][k] * gy[co][e]   conv_backward_input.cpp: GEMM, C rows = runs
//                                                               (scatter-add), then un-phased
//   backward-weight  gw[co][k]  = sum_n,e gy[co][e] * X[k][e]   conv_backward_weight.cpp: GEMM over real
//                                                               outputs, B = X^T packed from the runs
// Extended-grid columns ox >= ow are garbage in forward and are fed as zeros of gy in the backward passes.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include <omp.h>

#include "../common/ndarray.h"
#include "../common/params.h"
#include "gemm.h"

namespace convlab::cpu {

struct Phased {
  int64_t sh = 1, sw = 1, hq = 0, wq = 0;
  int64_t plane = 0;  // one phase: hq*wq plus slack, so a run may overhang its end by wq + 64 elements
  int64_t chan = 0;   // one channel: sh*sw planes
  int64_t np = 0;     // extended outputs per channel, oh*wq
  std::vector<int64_t> tap;    // tap kh_i*kw + kw_i starts at this offset inside a channel
  std::vector<char> used;      // phase a*sw + b is read by some tap
  bool identity = false;       // 1x1, stride 1, no padding: x itself is the layout (no slack)
};

Phased phased(const ConvParams& p, bool allow_identity = true);

// Small images: an extended grid under 4 GEMM tiles. Alone, one image would round up to whole tiles and pay
// the per-task overheads by itself, so the forward and strided backward-input passes of such layers run one
// GEMM whose columns are the real outputs of a whole chunk of images (P = images*oh*ow). So do images whose
// per-image GEMM would compute over 5/4 of their real outputs in whole tiles of garbage columns (Inception's
// 1x7 on 17x17: 432 columns for 289; 1-thread forward 1.43-1.48 -> 1.19-1.27 of PyTorch's time).
template <class T>
bool small_images(const ConvParams& p, const Phased& q) {
  constexpr int64_t nr = gemm_nr<T>;
  const int64_t outputs = p.oh * p.ow, computed = (q.np + nr - 1) / nr * nr;
  return outputs > 0 && (q.np < 4 * nr || 4 * computed > 5 * outputs);
}

// Leading dimension for a scratch matrix of n columns: whole vectors, and rows not a multiple of 2 KiB apart
// (the 8 rows of a GEMM micro-tile would share one set of the L1 cache).
template <class T>
int64_t padded_ld(int64_t n) {
  const int64_t ld = (n + lanes<T> - 1) / lanes<T> * lanes<T>;
  return ld * int64_t(sizeof(T)) % 2048 == 0 ? ld + lanes<T> : ld;
}

// The outputs o in [0, out) whose tap lands inside an input of length `in`, 0 <= o*stride + offset < in,
// as [lo, hi).
inline void in_range(int64_t offset, int64_t stride, int64_t in, int64_t out, int64_t& lo, int64_t& hi) {
  lo = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
  hi = offset >= in ? 0 : (in - offset + stride - 1) / stride;
  lo = std::min(lo, out), hi = std::clamp(hi, lo, out);
}

// A convolution pass of fewer multiply-adds than this runs on the calling thread: waking a sleeping OpenMP
// worker costs tens of microseconds on a quiet 2-vCPU VM (perf.md 14) and up to a time slice on a loaded one,
// what one thread needs for ~2^19 multiply-adds of a small GEMM (~20-40 G/s). EfficientNet's squeeze-excite
// 1x1 convs on 1x1 images (batch 1: a few thousand) took milliseconds in two threads (perf.md 24).
constexpr int64_t kSerialWork = int64_t(1) << 19;

// Multiply-adds of a pass (forward, backward-input and backward-weight each do this many).
inline int64_t conv_work(const ConvParams& p) {
  return p.n * p.c_out * p.oh * p.ow * p.c_in_per_group() * p.kh * p.kw;
}

// While alive, the OpenMP regions the calling thread opens run on it alone if `serial` (a team of one: no
// wake-up). The blocking then sees one thread, but it only cuts rows and columns of the GEMMs, never their
// reductions, so results do not change.
class SerialScope {
 public:
  explicit SerialScope(bool serial) : threads_(omp_get_max_threads()), serial_(serial) {
    if (serial_) omp_set_num_threads(1);
  }
  ~SerialScope() {
    if (serial_) omp_set_num_threads(threads_);
  }
  SerialScope(const SerialScope&) = delete;
  SerialScope& operator=(const SerialScope&) = delete;

 private:
  int threads_;
  bool serial_;
};

// The kernel rows [kh0, kh1) and columns [kw0, kw1) that some output reads inside x. Taps outside them fall
// in the padding for every output (a dilation as large as the image: DeepLab's ASPP at rate 18 on 14x14 keeps
// only the centre of 3x3), so forward and backward-input can run on the cropped kernel (cropped()).
struct LiveTaps {
  int64_t kh0, kh1, kw0, kw1;
};
LiveTaps live_taps(const ConvParams& p);
// The same convolution on kernel rows [kh0, kh1) and columns [kw0, kw1) only: the leading pads shrink by the
// dropped taps' offsets; the output size is unchanged.
ConvParams cropped(const ConvParams& p, const LiveTaps& live);
// w (c_out, c_in/groups, kh, kw) cut down to the live taps.
template <class T>
std::vector<T> crop_weight(const T* w, const ConvParams& p, const LiveTaps& live);

// run(w, p) on the live taps alone (a cropped copy of w) when some taps are dead, else on w and p itself. Only
// crops that leave the leading pads >= 0 are taken (unphase's phase arithmetic assumes them).
template <class T, class Run>
void on_live_taps(const T* w, const ConvParams& p, Run run) {
  const LiveTaps live = live_taps(p);
  const bool some_dead = live.kh1 - live.kh0 < p.kh || live.kw1 - live.kw0 < p.kw;
  const ConvParams c = cropped(p, live);
  if (!some_dead || c.kh < 1 || c.kw < 1 || c.pad_top < 0 || c.pad_left < 0) return run(w, p);
  const std::vector<T> wc = crop_weight(w, p, live);
  run(wc.data(), c);
}

// Whether a third or more of the tap-output products read padding: DeepLab's ASPP on 14x14 (dilation 6: 30
// of 42 tap-output pairs per axis reach x, dilation 12: 18), 3x3 kernels on images of 3x3 and less. The
// forward then runs a GEMM per tap over the outputs it reaches, and backward-input flips into that forward.
bool mostly_padding(const ConvParams& p);

// Images per chunk so that one chunk's phased input stays within kWorkspaceElements.
int64_t images_per_chunk(const ConvParams& p, const Phased& q);

// Row offsets of the implicit im2col matrix: row g*K + ci*taps + t is tap t of channel g*cig + ci.
std::vector<int64_t> run_offsets(const ConvParams& p, const Phased& q);
// Offsets r*stride of `rows` rows: a plain row-major matrix as Rows of the GEMM.
std::vector<int64_t> strided_offsets(int64_t rows, int64_t stride);

// The layout of images [0, nn) of x (nn*c_in*h*w elements): x itself when q.identity, else a scratch
// buffer (slot_input) with unused phases left unwritten.
template <class T>
const T* build_phased(const T* x, int64_t nn, const ConvParams& p, const Phased& q);
// One channel: src (h, w) -> out (chan elements).
template <class T>
void build_phased_channel(const T* src, T* out, const ConvParams& p, const Phased& q);

// gy (nn, c_out, oh, ow) on the extended grid with row length ld >= np: zeros in garbage columns and in the
// tail. gy itself when that is already its layout, else a scratch buffer (slot_output).
template <class T>
const T* extend_grad_output(const T* gy, int64_t nn, const ConvParams& p, const Phased& q, int64_t ld);

// gx (nn, c_in, h, w) from the phased layout; positions no phase row covers get 0. unphase_channel does
// one (h, w) plane from one channel of the layout.
template <class T>
void unphase(const T* gxq, T* gx, int64_t nn, const ConvParams& p, const Phased& q);
template <class T>
void unphase_channel(const T* gxq, T* gx, const ConvParams& p, const Phased& q);

// y (nn, c_out, oh, ow) = yq on the extended grid (row length wq) without garbage columns, plus bias.
// yq may be y itself (wq == ow): then only the bias is added.
template <class T>
void finish_output(const T* yq, T* y, const T* bias, int64_t nn, int64_t c_out, int64_t oh, int64_t ow, int64_t wq);

// The forward pass on this layout (conv_forward.cpp); also backward-input's engine at stride 1.
template <class T>
void forward_gemm(const T* x, const T* w, const T* bias, const ConvParams& p, T* y);

}  // namespace convlab::cpu
