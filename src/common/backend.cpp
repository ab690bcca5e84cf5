#include "backend.h"

namespace convlab {

bool cuda_compiled() {
#ifdef CONVLAB_WITH_CUDA
  return true;
#else
  return false;
#endif
}

RuntimeFlags& runtime_flags() {
  static RuntimeFlags flags;
  return flags;
}

const Backend& backend(Device device) {
  if (device == Device::cuda) {
#ifdef CONVLAB_WITH_CUDA
    return cuda_backend;
#else
    runtime_error("device 'cuda': convlab was built without the CUDA backend (no CUDA compiler at build time)");
#endif
  }
  return cpu_backend;
}

}  // namespace convlab
