// Errors raised from C++ and their Python types. pybind11 turns std::invalid_argument into ValueError,
// std::out_of_range into IndexError, std::runtime_error into RuntimeError and std::bad_alloc into
// MemoryError (with what() as the message);
// TypeError is registered in bindings.cpp.
#pragma once
#include <new>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace convlab {

struct TypeError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// cat("conv2d: stride must be >= 1, got ", s) -> one message string.
template <class... Args>
std::string cat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

template <class... Args>
[[noreturn]] void value_error(const Args&... args) {
  throw std::invalid_argument(cat(args...));
}

template <class... Args>
[[noreturn]] void type_error(const Args&... args) {
  throw TypeError(cat(args...));
}

template <class... Args>
[[noreturn]] void index_error(const Args&... args) {
  throw std::out_of_range(cat(args...));
}

template <class... Args>
[[noreturn]] void runtime_error(const Args&... args) {
  throw std::runtime_error(cat(args...));
}

// A failed allocation that says what was asked for (a bare std::bad_alloc reads "std::bad_alloc").
struct OutOfMemory : std::bad_alloc {
  std::string message;
  explicit OutOfMemory(std::string m) : message(std::move(m)) {}
  const char* what() const noexcept override { return message.c_str(); }
};

template <class... Args>
[[noreturn]] void out_of_memory(const Args&... args) {
  throw OutOfMemory(cat(args...));
}

}  // namespace convlab
