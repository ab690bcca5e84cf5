// Racecheck without a GPU: the emulated CUDA kernels under ThreadSanitizer (scripts/cuda_emulator/check.sh
// thread; docs/cuda_emulator.md). This machine's CPython crashes with libtsan preloaded, so instead of the
// pytest profile this C++ program, linked against the emulated CUDA backend and the CPU kernels (CMake target
// cuda_race_driver, built with CONVLAB_CUDA_EMULATOR=ON), runs every kernel family through the frontends
// Python calls (common/ops.h) on small odd shapes in every dtype they take. The emulator runs one OS thread
// per CUDA thread, so a missing __syncthreads or two threads of a block writing one element is a data race
// TSan reports (and aborts on); a result that differs from the CPU kernels' is reported here.
// Families with __shared__ or shuffles: matmul and the three implicit-GEMM conv passes (gemm_tile.cuh), the
// depthwise conv's warp sums, tiled conv, reductions and argmax, pooling's warp kernel, batch-norm stats and
// backward. The rest (elementwise, copy, pad, unfold, indexing, nonzero) is run too: one output element per
// thread is also a claim TSan checks.
#include <cmath>
#include <cstdio>
#include <exception>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "common/ops.h"

using namespace convlab;

namespace {

using Outputs = std::vector<NDArray>;
using OnDevice = std::function<NDArray(const NDArray&)>;  // an input, copied to the device the op runs on

std::mt19937_64 rng(2026);
int checks = 0, failures = 0;

// Standard normal values in dtype, rounded to multiples of `step` when given (coarse steps make ties for
// max pooling and argmax); integers and bool take the rounded value as it converts.
NDArray random(const Shape& shape, DType dtype, double step = 0) {
  NDArray a = NDArray::empty(shape, DType::f64, Device::cpu);
  std::normal_distribution<double> normal(0.0, 2.0);
  for (int64_t i = 0; i < a.size(); ++i) {
    double v = normal(rng);
    a.data<double>()[i] = step > 0 ? std::round(v / step) * step : v;
  }
  return a.astype(dtype);
}

NDArray integers(const Shape& shape, int64_t lo, int64_t hi) {
  NDArray a = NDArray::empty(shape, DType::i64, Device::cpu);
  std::uniform_int_distribution<int64_t> uniform(lo, hi - 1);
  for (int64_t i = 0; i < a.size(); ++i) a.data<int64_t>()[i] = uniform(rng);
  return a;
}

AxisIndex slice(int64_t start, int64_t stop, int64_t step = 1) { return {false, start, stop, step}; }
AxisIndex at(int64_t i) { return {true, i, i + 1, 1}; }

// Reductions sum in another order on the two devices.
double tolerance(DType dtype) { return dtype == DType::f32 ? 1e-4 : dtype == DType::f64 ? 1e-10 : 0; }

bool same(const NDArray& cpu, const NDArray& gpu, std::string& why) {
  if (cpu.shape != gpu.shape || cpu.dtype != gpu.dtype) {
    why = "shape or dtype " + shape_str(gpu.shape) + " " + dtype_name(gpu.dtype) + ", CPU " + shape_str(cpu.shape) +
          " " + dtype_name(cpu.dtype);
    return false;
  }
  const NDArray c = cpu.astype(DType::f64), g = gpu.astype(DType::f64);
  const double tol = tolerance(cpu.dtype);
  for (int64_t i = 0; i < c.size(); ++i) {
    const double a = c.data<double>()[i], b = g.data<double>()[i];
    if (a == b || (std::isnan(a) && std::isnan(b))) continue;
    if (!(std::fabs(a - b) <= tol * (1 + std::fabs(a)))) {
      why = cat("element ", i, ": CUDA ", b, ", CPU ", a);
      return false;
    }
  }
  return true;
}

// Runs op on CPU copies and on CUDA copies of its inputs and compares every output.
void expect_agree(const std::string& name, DType dtype, const std::function<Outputs(const OnDevice&)>& op) {
  const Outputs cpu = op([](const NDArray& a) { return a.copy(); });
  const Outputs gpu = op([](const NDArray& a) { return a.to(Device::cuda); });
  for (size_t k = 0; k < cpu.size(); ++k) {
    std::string why;
    ++checks;
    if (!same(cpu[k], gpu[k].to(Device::cpu), why)) {
      ++failures;
      std::printf("FAIL %s (%s) output %zu: %s\n", name.c_str(), dtype_name(dtype), k, why.c_str());
    }
  }
}

const std::vector<DType> kFloats = {DType::f32, DType::f64};
const std::vector<DType> kAll = {DType::b8, DType::i32, DType::i64, DType::f32, DType::f64};

void elementwise(DType t) {
  const NDArray a = random({3, 4, 37}, t, 0.5), b = random({4, 1}, t, 0.5), c = random({37, 3, 4}, t);
  const bool is_bool = t == DType::b8, floating = is_floating(t);
  expect_agree("binary", t, [&](const OnDevice& on) -> Outputs {
    Outputs out = {binary(BinaryOp::maximum, on(a), on(b)), binary(BinaryOp::lt, on(a), on(b)),
                   binary_scalar(BinaryOp::mul, on(a).permute({2, 0, 1}), 3, true, DType::i64)};
    if (!is_bool) out.push_back(binary(BinaryOp::add, on(a), on(b)));
    if (!floating) out.push_back(binary(BinaryOp::bitwise_xor, on(a), on(b)));
    return out;
  });
  expect_agree("unary", t, [&](const OnDevice& on) -> Outputs {
    if (is_bool) return {unary(UnaryOp::logical_not, on(a))};
    Outputs out = {unary(UnaryOp::abs, on(a)), unary(UnaryOp::sign, on(a))};
    if (floating) {
      out.push_back(unary(UnaryOp::tanh, on(a)));
      out.push_back(clamp(on(a).flip({2}), -0.5, 1.0));
      out.push_back(clamp(on(a), std::nullopt, 0.25));
      out.push_back(clamp_backward(on(a).flip({2}), on(a), -0.5, 1.0));
      out.push_back(clamp_backward(on(a), on(b).broadcast_to(a.shape), 0, std::nullopt));
    }
    return out;
  });
  if (floating) {
    expect_agree("sgd_step, adam_step", t, [&](const OnDevice& on) -> Outputs {
      // Updated in place: p, the momentum buffer (a permuted view), q (a flipped view) and Adam's moments.
      NDArray p = on(a), buf = on(c).permute({1, 2, 0}), q = on(a).flip({2}), m = on(a);
      NDArray v = unary(UnaryOp::abs, on(a)), v_max = unary(UnaryOp::abs, on(c).permute({1, 2, 0}));
      sgd_step(p, on(b).broadcast_to(a.shape), &buf, SgdOptions{0.1, 0.01, 0.9, 0.2, false, false, false});
      adam_step(q, on(a), m, v, &v_max, AdamOptions{0.01, 0.9, 0.99, 1e-8, 0.1, 3, true, true});
      return {p, buf, q, m, v, v_max};
    });
  }
  expect_agree("copy, fill", t, [&](const OnDevice& on) -> Outputs {
    NDArray dst = on(c);
    assign(dst.index({slice(0, 37), slice(0, 3, 2), slice(0, 4)}),
           on(a).permute({2, 0, 1}).index({slice(0, 37), slice(0, 3, 2), slice(0, 4)}));
    fill(dst.index({slice(1, 37, 3)}), 1);
    return {dst, on(a).flip({1}).astype(DType::f64), on(a).astype(DType::i32)};
  });
}

void reductions(DType t) {
  // Rows of 4099 split into chunks, reduced again; (6, 7, 5) over axes (0, 2): one pass.
  const NDArray a = random({3, 4099}, t, 0.25), b = random({6, 7, 5}, t, 0.5);
  expect_agree("reduce", t, [&](const OnDevice& on) -> Outputs {
    if (t == DType::b8) return {reduce(ReduceOp::sum, on(a), {1}, false), reduce(ReduceOp::sum, on(b), {}, false)};
    return {reduce(ReduceOp::sum, on(a), {1}, false), reduce(ReduceOp::max, on(a), {1}, true),
            reduce(ReduceOp::min, on(b), {0, 2}, false), reduce(ReduceOp::max, on(b), {}, false),
            arg_reduce(ReduceOp::max, on(a), 1, false), arg_reduce(ReduceOp::min, on(b), 1, false)};
  });
}

void matmul_and_pad(DType t) {
  const NDArray a = random({2, 65, 37}, t), b = random({2, 37, 70}, t), x = random({2, 5, 6}, t);
  expect_agree("matmul", t, [&](const OnDevice& on) -> Outputs { return {matmul(on(a), on(b))}; });
  expect_agree("pad", t, [&](const OnDevice& on) -> Outputs {
    return {pad(on(x), {{0, 1}, {2, 3}, {4, 1}}, "reflect", 0), pad(on(x), {{1, 2}}, "constant", 1.5)};
  });
}

struct ConvCase {
  int64_t n, c_in, c_out;
  Shape spatial, kernel;
  ConvArgs args;
};

// One case per path and corner of the dispatch (as tests/test_cuda.py's CONV_CASES): dense with ragged tiles,
// stride > kernel with asymmetric padding, dilation, groups, 1x1 (pointwise tiles), depthwise with a
// multiplier, one-in one-out (depthwise kernels), 1-D, and a long n*oh*ow that splits the weight gradient.
const std::vector<ConvCase> kConvCases = {
    {2, 5, 7, {9, 11}, {3, 3}, {{1, 1}, {1, 1}, {}, {{1, 1}, {1, 1}}, 1}},
    {1, 3, 4, {10, 9}, {2, 2}, {{3, 3}, {1, 1}, {}, {{1, 0}, {0, 2}}, 1}},
    {2, 6, 9, {12, 13}, {3, 2}, {{2, 1}, {2, 3}, {}, {{2, 1}, {0, 3}}, 3}},
    {2, 70, 66, {5, 7}, {1, 1}, {{1, 1}, {1, 1}, {}, {{0, 0}, {0, 0}}, 1}},
    {2, 4, 8, {9, 10}, {3, 3}, {{2, 2}, {1, 1}, {}, {{1, 1}, {1, 1}}, 4}},
    {1, 1, 1, {11, 12}, {4, 3}, {{1, 1}, {1, 1}, {}, {{1, 2}, {0, 1}}, 1}},
    {2, 3, 4, {17}, {3}, {{2}, {2}, {}, {{1, 2}}, 1}},
    {3, 3, 4, {20, 20}, {3, 3}, {{1, 1}, {1, 1}, {}, {{1, 1}, {1, 1}}, 1}},
};

Shape concat(Shape a, const Shape& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

void convolutions(DType t) {
  for (const ConvCase& c : kConvCases) {
    const NDArray x = random(concat({c.n, c.c_in}, c.spatial), t);
    NDArray w = random(concat({c.c_out, c.c_in / c.args.groups}, c.kernel), t), bias = random({c.c_out}, t);
    const NDArray gy = random(conv_forward(x, w, nullptr, c.args).shape, t);
    expect_agree("conv", t, [&](const OnDevice& on) -> Outputs {
      const NDArray b = on(bias);
      return {conv_forward(on(x), on(w), &b, c.args), conv_backward_input(on(gy), on(w), c.spatial, c.args),
              conv_backward_weight(on(x), on(gy), c.kernel, c.args)};
    });
  }
  // A weight holding inf: gx elements that came out NaN are recomputed by the definition (the flag kernel
  // and the redo kernel).
  const ConvCase& c = kConvCases[1];
  NDArray w = random(concat({c.c_out, c.c_in}, c.kernel), t);
  fill(w.index({at(0), at(1)}), INFINITY);
  const NDArray gy = random(conv_forward(random(concat({c.n, c.c_in}, c.spatial), t), w, nullptr, c.args).shape, t);
  expect_agree("conv backward_input, inf weight", t, [&](const OnDevice& on) -> Outputs {
    return {conv_backward_input(on(gy), on(w), c.spatial, c.args)};
  });
  const NDArray x = random({2, 3, 9, 8}, t);
  const ConvArgs args = {{2, 1}, {1, 2}, {}, {{1, 0}, {2, 1}}, 1};
  const NDArray cols = random(unfold(x, {3, 2}, args).shape, t);
  expect_agree("unfold, fold", t, [&](const OnDevice& on) -> Outputs {
    return {unfold(on(x), {3, 2}, args), fold(on(cols), {9, 8}, {3, 2}, args)};
  });
}

// Shared weights on a 2x3 tile, and a locally connected layer (the tile is the whole output).
void tiled_convolutions(DType t) {
  const ConvArgs args = {{1, 1}, {1, 1}, {}, {{1, 1}, {1, 0}}, 1};
  for (bool unshared : {false, true}) {
    const NDArray x = random({2, 3, 7, 6}, t);
    const Shape tile = unshared ? Shape{7, 5} : Shape{2, 3};
    const Shape weight_shape = concat(tile, {17, 3, 3, 3});
    const NDArray w = random(weight_shape, t), bias = random(concat(tile, {17}), t);
    const NDArray gy = random(tiled_conv_forward(x, w, nullptr, args, unshared).shape, t);
    expect_agree(unshared ? "locally connected" : "tiled conv", t, [&](const OnDevice& on) -> Outputs {
      const NDArray b = on(bias);
      return {tiled_conv_forward(on(x), on(w), &b, args, unshared),
              tiled_conv_backward_input(on(gy), on(w), {7, 6}, args, unshared),
              tiled_conv_backward_weight(on(x), on(gy), weight_shape, args, unshared)};
    });
  }
}

void pooling(DType t) {
  const NDArray x = random({2, 3, 9, 10}, t, 0.5), big = random({2, 3, 20, 21}, t);
  const PoolArgs max_args = {{3, 3}, {2, 2}, {1, 1}, {1, 2}, true, true};
  const PoolArgs avg_args = {{3, 2}, {2, 1}, {1, 1}, {1, 1}, true, false};
  const NDArray gy_max = random(max_pool_forward(x, max_args).shape, t);
  const NDArray gy_avg = random(avg_pool_forward(x, avg_args).shape, t), gy_adaptive = random({2, 3, 4, 3}, t);
  expect_agree("pool", t, [&](const OnDevice& on) -> Outputs {
    NDArray indices;
    NDArray y = max_pool_forward(on(x), max_args, &indices);
    return {y, indices, max_pool_backward_indices(indices, on(gy_max), {9, 10}, max_args),
            avg_pool_forward(on(x), avg_args), avg_pool_backward(on(gy_avg), {9, 10}, avg_args),
            adaptive_avg_pool_forward(on(x), {4, 3}), adaptive_avg_pool_forward(on(big), {1, 1}),
            adaptive_avg_pool_backward(on(gy_adaptive), {9, 10})};
  });
}

// Seven channels: more than the emulator's five blocks, so the per-channel kernels loop.
void batch_norm(DType t) {
  const NDArray x = random({3, 7, 5, 6}, t), gy = random({3, 7, 5, 6}, t), w = random({7}, t), b = random({7}, t);
  NDArray var = random({7}, t);
  var = unary(UnaryOp::abs, var);
  const NDArray mean = random({7}, t);
  for (bool training : {true, false}) {
    expect_agree(training ? "batch norm, training" : "batch norm, eval", t, [&](const OnDevice& on) -> Outputs {
      const NDArray wd = on(w), bd = on(b), md = on(mean), vd = on(var);
      auto [y, m, v] = batch_norm_forward(on(x), &md, &vd, &wd, &bd, training, 1e-5);
      auto [gx, gw, gb] = batch_norm_backward(on(x), on(gy), m, v, &wd, training, 1e-5);
      return {y, m, v, gx, gw, gb};
    });
  }
}

void indexing(DType t) {
  const NDArray a = random({4, 5, 3}, t, 0.5), src = random({4, 6, 3}, t), index = integers({4, 6, 3}, 0, 5);
  const NDArray positions = integers({2, 3}, -5, 5), cond = binary_scalar(BinaryOp::gt, random({4, 1, 3}, DType::f32), 0,
                                                                          false, DType::f64);
  // put with unique_indices: distinct positions of a (4, 5, 3) array's middle axis.
  NDArray unique = NDArray::empty({3}, DType::i64, Device::cpu);
  for (int64_t i = 0; i < 3; ++i) unique.data<int64_t>()[i] = 2 * i - 1;
  expect_agree("index", t, [&](const OnDevice& on) -> Outputs {
    NDArray scattered = on(a), added = on(a), put_into = on(a);
    scatter(scattered, 1, on(index), on(src), false);
    if (t != DType::b8) scatter(added, 1, on(index), on(src), true);
    put(put_into, 1, on(unique), on(src).index({slice(0, 4), slice(0, 3), slice(0, 3)}), t != DType::b8, true);
    return {gather(on(a), 1, on(index)), take(on(a), 1, on(positions).astype(DType::i32)), scattered, added,
            put_into, where(on(cond), on(a), on(src).index({slice(0, 4), slice(0, 1), slice(0, 3)})), nonzero(on(a))};
  });
}

}  // namespace

int main() try {
  for (DType t : kAll) {
    elementwise(t);
    reductions(t);
    indexing(t);
  }
  for (DType t : kFloats) {
    matmul_and_pad(t);
    convolutions(t);
    tiled_convolutions(t);
    pooling(t);
    batch_norm(t);
  }
  std::printf("cuda_race_driver: %d outputs compared with the CPU kernels, %d differ\n", checks, failures);
  return failures ? 1 : 0;
} catch (const std::exception& e) {
  std::printf("cuda_race_driver: %s\n", e.what());
  return 1;
}
