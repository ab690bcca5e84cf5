// Errors raised from C++ and their Python types. pybind11 turns std::invalid_argument into ValueError and
// std::runtime_error into RuntimeError; TypeError is registered in bindings.cpp.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

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
[[noreturn]] void runtime_error(const Args&... args) {
  throw std::runtime_error(cat(args...));
}

}  // namespace convlab
