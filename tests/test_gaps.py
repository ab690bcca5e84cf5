"""Smaller PyTorch features that CNN programs use, composed from existing ops: Tensor.mm/bmm/matmul, norm
(Tensor.norm, convlab.norm, convlab.linalg.vector_norm), is_cuda, relu_/sigmoid_/tanh_, isnan/isinf/isfinite,
cumsum, tril/triu, roll; F.normalize/cosine_similarity/pairwise_distance; the padding modules;
pixel_shuffle/pixel_unshuffle; local_response_norm. Values and gradients against PyTorch, NumPy references
written from the math, float64 gradchecks, and bad input."""
import math

import numpy as np
import pytest

import convlab as cl
import convlab.nn.functional as F
from autograd_helpers import compare_with_torch, gradcheck, torch_or_skip
from conftest import DEVICES

torch = torch_or_skip()
TF = torch.nn.functional
INF = math.inf


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# ---- matrix products as methods ----
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("op, shapes", [
    ("mm", [(3, 4), (4, 5)]), ("mm", [(1, 1), (1, 2)]), ("bmm", [(2, 3, 4), (2, 4, 1)]),
    ("matmul", [(2, 3, 4), (4,)]), ("matmul", [(5, 1, 3, 4), (2, 4, 2)])])
def test_matrix_product_methods_match_torch(device, op, shapes):
    arrays = [randn(*s, seed=i) for i, s in enumerate(shapes)]
    out = compare_with_torch(lambda a, b: getattr(a, op)(b), lambda a, b: getattr(a, op)(b), arrays, device,
                             "float64")
    np.testing.assert_allclose(out.numpy(), np.matmul(*arrays), rtol=1e-12)


def test_mm_and_bmm_methods_check_shapes():
    with pytest.raises(ValueError, match="2-D"):
        cl.ones(2, 3, 4).mm(cl.ones(4, 2))
    with pytest.raises(ValueError, match="cannot be multiplied"):
        cl.ones(2, 3).mm(cl.ones(2, 3))
    with pytest.raises(ValueError, match="3-D"):
        cl.ones(3, 4).bmm(cl.ones(4, 2))


def test_is_cuda():
    assert cl.ones(2).is_cuda is False


# ---- norms ----
def norm_reference(x, p, axes, keepdim):
    """From the definition: (sum |x|^p)^(1/p); inf / -inf the largest / smallest |x|."""
    axes = tuple(range(x.ndim)) if axes is None else axes
    size = np.abs(x)
    if p == INF:
        return size.max(axis=axes, keepdims=keepdim)
    if p == -INF:
        return size.min(axis=axes, keepdims=keepdim)
    return (size ** p).sum(axis=axes, keepdims=keepdim) ** (1.0 / p)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("p", [2, 1, 3, 0.5, INF, -INF, "fro", None])
@pytest.mark.parametrize("dim, keepdim", [(None, False), (1, False), (-1, True), ((0, 2), False), ((0, 2), True)])
def test_norm_matches_torch_and_the_definition(device, p, dim, keepdim):
    x = randn(3, 4, 5)
    out = compare_with_torch(lambda a: a.norm(p, dim, keepdim), lambda a: a.norm(p, dim, keepdim), [x], device,
                             "float64")
    axes = (dim,) if isinstance(dim, int) else dim
    np.testing.assert_allclose(out.numpy(), norm_reference(x, 2 if p in ("fro", None) else p, axes, keepdim),
                               rtol=1e-12)
    gradcheck(lambda a: a.norm(p, dim, keepdim), [x], device)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("ord", [2, 1, INF])
def test_functions_norm_and_linalg_vector_norm(device, ord):
    x = randn(2, 7)
    compare_with_torch(lambda a: cl.norm(a, ord, 1), lambda a: torch.norm(a, ord, 1), [x], device, "float32")
    compare_with_torch(lambda a: cl.linalg.vector_norm(a, ord), lambda a: torch.linalg.vector_norm(a, ord), [x],
                       device, "float64")
    compare_with_torch(lambda a: cl.linalg.vector_norm(a, ord, dim=(0, 1), keepdim=True),
                       lambda a: torch.linalg.vector_norm(a, ord, dim=(0, 1), keepdim=True), [x], device, "float64")


def test_norm_of_a_zero_vector_has_gradient_zero_as_in_torch():
    x = cl.zeros(2, 3, dtype="float64", requires_grad=True)
    x.norm(dim=1).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.zeros((2, 3)))


@pytest.mark.parametrize("ord", [INF, -INF])
@pytest.mark.parametrize("dim", [None, 1, (0, 1)])
def test_inf_norm_shares_the_gradient_among_ties_as_in_torch(ord, dim):
    x = np.array([[3.0, -3.0, 1.0], [0.5, 2.0, -0.5], [-3.0, 0.5, 2.0]])
    compare_with_torch(lambda a: a.norm(ord, dim), lambda a: a.norm(ord, dim), [x], "cpu", "float64")


def test_norm_of_a_0d_tensor_and_dtype():
    assert cl.tensor(-3.0).norm().item() == 3.0
    out = cl.tensor([3.0, 4.0]).norm(dtype=cl.float64)
    assert out.dtype == cl.float64 and out.item() == 5.0


def test_norm_bad_input():
    with pytest.raises(ValueError, match="ord"):
        cl.ones(3).norm(0)
    with pytest.raises(ValueError, match="ord"):
        cl.ones(3).norm("nuc")
    with pytest.raises(TypeError, match="floating point"):
        cl.tensor([1, 2]).norm()
    with pytest.raises(TypeError, match="Tensor"):
        cl.linalg.vector_norm([1.0, 2.0])


# ---- in-place activations ----
@pytest.mark.parametrize("name", ["relu_", "sigmoid_", "tanh_"])
def test_inplace_activations_write_into_storage(name):
    x = randn(3, 4)
    ours = cl.tensor(x)
    view = ours[1:]
    assert getattr(ours, name)() is ours
    expected = getattr(torch.tensor(x), name)().numpy()
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(view.numpy(), expected[1:], rtol=1e-6)  # the storage itself changed


@pytest.mark.parametrize("name", ["relu_", "sigmoid_", "tanh_"])
def test_inplace_activations_inside_autograd_match_torch(name):
    def run(lib, a):
        h = a * 2.0
        getattr(h, name)()
        return h * 3.0

    compare_with_torch(lambda a: run(cl, a), lambda a: run(torch, a), [randn(4, 5)], "cpu", "float64")


def test_inplace_activation_on_a_leaf_that_requires_grad_is_refused():
    with pytest.raises(RuntimeError, match="leaf"):
        cl.ones(3, requires_grad=True).relu_()


# ---- special values ----
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", ["isnan", "isinf", "isfinite"])
@pytest.mark.parametrize("dtype", ["float32", "float64", "int64", "int32", "bool"])
def test_special_value_tests_match_torch(device, name, dtype):
    values = np.array([[0.0, -1.5, np.nan], [np.inf, -np.inf, 3.0]])
    if dtype == "bool":
        values = np.array([True, False])
    elif dtype.startswith("int"):
        values = np.array([[0, -7], [2 ** 30, 5]])
    values = values.astype(dtype)
    ours = getattr(cl, name)(cl.tensor(values, device=device))
    theirs = getattr(torch, name)(torch.tensor(values))
    assert ours.dtype == cl.bool
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    np.testing.assert_array_equal(ours.numpy(), getattr(np, name)(values.astype(np.float64)))


def test_special_value_tests_do_not_record_a_graph():
    x = cl.tensor([1.0, np.nan], requires_grad=True)
    assert not x.isnan().requires_grad and not x.isfinite().requires_grad


# ---- cumsum ----
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape, dim", [((7,), 0), ((1,), 0), ((3, 5), 1), ((3, 5), 0), ((2, 9, 4), -2),
                                        ((2, 0, 3), 1), ((4, 16), 1)])
def test_cumsum_matches_torch_and_numpy(device, shape, dim):
    x = randn(*shape)
    out = compare_with_torch(lambda a: a.cumsum(dim), lambda a: a.cumsum(dim), [x], device, "float64")
    np.testing.assert_allclose(out.numpy(), np.cumsum(x, axis=dim), rtol=1e-12, atol=1e-12)
    if x.size:
        gradcheck(lambda a: cl.cumsum(a, dim), [x], device)


@pytest.mark.parametrize("dtype", ["int32", "int64", "bool"])
def test_cumsum_of_integers_and_bools_is_int64_as_in_torch(dtype):
    x = (np.arange(-3, 9) % 3 == 0) if dtype == "bool" else np.arange(-3, 9).astype(dtype)
    ours = cl.tensor(x).cumsum(0)
    assert ours.dtype == cl.int64
    np.testing.assert_array_equal(ours.numpy(), torch.tensor(x).cumsum(0).numpy())


def test_cumsum_dtype_and_0d():
    out = cl.tensor([1, 2, 3]).cumsum(0, dtype=cl.float64)
    assert out.dtype == cl.float64 and out.tolist() == [1.0, 3.0, 6.0]
    assert cl.tensor(2.5).cumsum(0).item() == 2.5
    with pytest.raises(ValueError, match="dim"):
        cl.ones(3).cumsum(1)


# ---- tril / triu ----
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", ["tril", "triu"])
@pytest.mark.parametrize("shape, diagonal", [((4, 4), 0), ((3, 5), 1), ((5, 3), -2), ((2, 3, 4), 0), ((3, 3), 7),
                                             ((1, 1), 0)])
def test_triangles_match_torch_and_numpy(device, name, shape, diagonal):
    x = randn(*shape)
    out = compare_with_torch(lambda a: getattr(a, name)(diagonal), lambda a: getattr(a, name)(diagonal), [x],
                             device, "float32")
    np.testing.assert_allclose(out.numpy(), getattr(np, name)(x, diagonal).astype(np.float32))


def test_triangles_zero_infinities_and_keep_integers():
    x = np.array([[1.0, np.inf], [-np.inf, np.nan]])
    np.testing.assert_array_equal(cl.tensor(x).tril().numpy(), torch.tensor(x).tril().numpy())
    out = cl.triu(cl.tensor([[1, 2], [3, 4]]), diagonal=1)
    assert out.dtype == cl.int64 and out.tolist() == [[0, 2], [0, 0]]


def test_triangles_bad_input():
    with pytest.raises(ValueError, match="2 dimensions"):
        cl.ones(3).tril()
    with pytest.raises(TypeError, match="diagonal"):
        cl.ones(3, 3).triu(0.5)


# ---- roll ----
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shifts, dims", [(1, 0), (-2, 1), (7, 1), ((1, -1), (0, 1)), (3, None), ((2, 2), (1, 1)),
                                          (0, 0)])
def test_roll_matches_torch_and_numpy(device, shifts, dims):
    x = randn(3, 5)
    out = compare_with_torch(lambda a: a.roll(shifts, dims), lambda a: a.roll(shifts, dims), [x], device, "float64")
    np.testing.assert_array_equal(out.numpy(), np.roll(x, shifts, dims))


def test_roll_function_and_bad_input():
    assert cl.roll(cl.arange(5), -1).tolist() == [1, 2, 3, 4, 0]
    with pytest.raises(ValueError, match="same length"):
        cl.ones(2, 2).roll((1, 1), 0)
    with pytest.raises(ValueError, match="one int"):
        cl.ones(2, 2).roll((1, 1))


# ---- normalize and distances ----
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("p, dim", [(2.0, 1), (1.0, 0), (3.0, -1), (INF, 1)])
def test_normalize_matches_torch(device, p, dim):
    x = randn(4, 6)
    x[1] = 0.0  # a zero row: the norm is held at eps
    out = compare_with_torch(lambda a: F.normalize(a, p, dim), lambda a: TF.normalize(a, p, dim), [x], device,
                             "float64")
    expected = x / np.maximum(norm_reference(x, p, (dim,), True), 1e-12)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12)
    gradcheck(lambda a: F.normalize(a, p, dim), [randn(3, 4, seed=1)], device)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shapes, dim", [([(4, 6), (4, 6)], 1), ([(1, 6), (5, 6)], 1), ([(3, 2, 5), (3, 2, 5)], 0),
                                         ([(6,), (6,)], 0)])
def test_cosine_similarity_matches_torch(device, shapes, dim):
    arrays = [randn(*s, seed=i) for i, s in enumerate(shapes)]
    out = compare_with_torch(lambda a, b: F.cosine_similarity(a, b, dim), lambda a, b: TF.cosine_similarity(a, b, dim),
                             arrays, device, "float64")
    a, b = np.broadcast_arrays(*arrays)
    expected = (a * b).sum(dim) / (np.linalg.norm(a, axis=dim) * np.linalg.norm(b, axis=dim))
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12)
    compare_with_torch(lambda a, b: cl.nn.CosineSimilarity(dim)(a, b),
                       lambda a, b: torch.nn.CosineSimilarity(dim)(a, b), arrays, device, "float32")
    gradcheck(lambda a, b: F.cosine_similarity(a, b, dim), arrays, device)


def test_cosine_similarity_of_a_vector_shorter_than_eps_matches_torch():
    """The norm is raised to eps, but the gradient passes through it as if it were not (PyTorch's rule)."""
    x, y = np.array([[1e-10, 2e-10, 0.0], [0.0, 0.0, 0.0]]), np.array([[1.0, 0.5, 2.0], [1.0, -1.0, 3.0]])
    compare_with_torch(F.cosine_similarity, TF.cosine_similarity, [x, y], "cpu", "float64")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("p, keepdim, shapes", [(2.0, False, [(4, 6), (4, 6)]), (1.0, True, [(4, 6), (1, 6)]),
                                                (3.0, False, [(5,), (5,)])])
def test_pairwise_distance_matches_torch(device, p, keepdim, shapes):
    arrays = [randn(*s, seed=i) for i, s in enumerate(shapes)]
    compare_with_torch(lambda a, b: F.pairwise_distance(a, b, p, keepdim=keepdim),
                       lambda a, b: TF.pairwise_distance(a, b, p, keepdim=keepdim), arrays, device, "float64")
    compare_with_torch(lambda a, b: cl.nn.PairwiseDistance(p, keepdim=keepdim)(a, b),
                       lambda a, b: torch.nn.PairwiseDistance(p, keepdim=keepdim)(a, b), arrays, device, "float32")
    gradcheck(lambda a, b: F.pairwise_distance(a, b, p, keepdim=keepdim), arrays, device)


# ---- padding modules ----
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("module, shape", [
    ("ZeroPad2d(1)", (2, 3, 4, 5)), ("ZeroPad2d((1, 0, 2, 3))", (3, 4, 5)), ("ZeroPad1d((2, 1))", (2, 3, 4)),
    ("ConstantPad2d((1, 2, 0, 1), 3.5)", (1, 2, 3, 3)), ("ConstantPad1d(2, -1)", (2, 5)),
    ("ReflectionPad2d((2, 1, 1, 2))", (2, 3, 4, 5)), ("ReflectionPad1d(3)", (1, 2, 6)),
    ("ReplicationPad2d(2)", (1, 3, 4, 4)), ("ReplicationPad1d((0, 3))", (2, 3, 4)),
    ("ZeroPad2d((-1, 1, 0, -2))", (1, 1, 4, 5))])
def test_padding_modules_match_torch(device, module, shape):
    ours, theirs = eval("cl.nn." + module), eval("torch.nn." + module)
    assert repr(ours) == repr(theirs)
    compare_with_torch(ours, theirs, [randn(*shape)], device, "float64")


def test_padding_module_bad_input():
    with pytest.raises(ValueError, match="padding"):
        cl.nn.ZeroPad2d((1, 2, 3))
    with pytest.raises(TypeError):
        cl.nn.ZeroPad2d(1, 5.0)  # no value, as in PyTorch
    with pytest.raises(TypeError):
        cl.nn.ConstantPad2d(1)  # value is required, as in PyTorch
    with pytest.raises(ValueError, match="reflect"):
        cl.nn.ReflectionPad1d(4)(cl.ones(1, 1, 3))


# ---- pixel shuffle ----
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape, r", [((2, 8, 3, 5), 2), ((18, 2, 1), 3), ((1, 1, 1, 4, 2), 1), ((2, 3, 4, 12, 6), 2)])
def test_pixel_shuffle_matches_torch_and_inverts(device, shape, r):
    x = randn(*shape)
    if shape[-3] % (r * r) == 0:
        out = compare_with_torch(lambda a: F.pixel_shuffle(a, r), lambda a: TF.pixel_shuffle(a, r), [x], device,
                                 "float64")
        np.testing.assert_array_equal(F.pixel_unshuffle(out, r).numpy(), x)
        compare_with_torch(cl.nn.PixelShuffle(r), torch.nn.PixelShuffle(r), [x], device, "float32")
        # the reference from the definition: out[..., c, h*r + i, w*r + j] = x[..., c*r*r + i*r + j, h, w]
        o = out.numpy()
        c, h, w = shape[-3] // (r * r), shape[-2], shape[-1]
        for idx in [(0, 0, 0, 0, 0), (c - 1, h - 1, w - 1, r - 1, r - 1), (c // 2, h // 2, 0, r - 1, 0)]:
            ci, hi, wi, i, j = idx
            np.testing.assert_array_equal(o[..., ci, hi * r + i, wi * r + j], x[..., ci * r * r + i * r + j, hi, wi])
    if shape[-2] % r == 0 and shape[-1] % r == 0:
        out = compare_with_torch(lambda a: F.pixel_unshuffle(a, r), lambda a: TF.pixel_unshuffle(a, r), [x], device,
                                 "float64")
        np.testing.assert_array_equal(F.pixel_shuffle(out, r).numpy(), x)
        compare_with_torch(cl.nn.PixelUnshuffle(r), torch.nn.PixelUnshuffle(r), [x], device, "float32")


def test_pixel_shuffle_bad_input():
    with pytest.raises(ValueError, match="upscale_factor"):
        F.pixel_shuffle(cl.ones(1, 6, 2, 2), 2)
    with pytest.raises(ValueError, match="upscale_factor"):
        F.pixel_shuffle(cl.ones(1, 4, 2, 2), 0)
    with pytest.raises(ValueError, match="downscale_factor"):
        F.pixel_unshuffle(cl.ones(1, 1, 3, 4), 2)
    with pytest.raises(TypeError, match="input"):
        F.pixel_shuffle(np.ones((1, 4, 2, 2)), 2)
    assert repr(cl.nn.PixelUnshuffle(3)) == repr(torch.nn.PixelUnshuffle(3))


# ---- local response norm ----
def lrn_reference(x, size, alpha, beta, k):
    """From PyTorch's definition: b_c = a_c / (k + alpha / n * sum_{c'} a_{c'}^2)^beta, the sum over the
    channels c - n/2 .. c + (n-1)/2 that exist."""
    out = np.empty_like(x)
    for c in range(x.shape[1]):
        lo, hi = max(c - size // 2, 0), min(c + (size - 1) // 2, x.shape[1] - 1)
        out[:, c] = x[:, c] / (k + alpha / size * (x[:, lo:hi + 1] ** 2).sum(1)) ** beta
    return out


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape, size, alpha, beta, k", [
    ((2, 7, 3, 4), 5, 1e-4, 0.75, 2.0), ((1, 3, 2, 2), 2, 0.5, 0.75, 1.0), ((2, 4, 5), 3, 1.0, 0.5, 1.0),
    ((1, 2, 2, 3, 2), 1, 0.1, 1.0, 0.5), ((2, 3, 2, 2), 9, 2.0, 0.75, 1.0)])
def test_local_response_norm_matches_torch_and_the_definition(device, shape, size, alpha, beta, k):
    x = randn(*shape)
    out = compare_with_torch(lambda a: F.local_response_norm(a, size, alpha, beta, k),
                             lambda a: TF.local_response_norm(a, size, alpha, beta, k), [x], device, "float64")
    np.testing.assert_allclose(out.numpy(), lrn_reference(x, size, alpha, beta, k), rtol=1e-12)
    compare_with_torch(cl.nn.LocalResponseNorm(size, alpha, beta, k), torch.nn.LocalResponseNorm(size, alpha, beta, k),
                       [x], device, "float32")
    gradcheck(lambda a: F.local_response_norm(a, size, alpha, beta, k), [randn(1, *shape[1:], seed=2)], device)


def test_local_response_norm_bad_input():
    with pytest.raises(ValueError, match="3 or more"):
        F.local_response_norm(cl.ones(2, 3), 2)
    with pytest.raises(ValueError, match="size"):
        F.local_response_norm(cl.ones(1, 2, 3), 0)
    assert repr(cl.nn.LocalResponseNorm(5, k=2.0)) == repr(torch.nn.LocalResponseNorm(5, k=2.0))
