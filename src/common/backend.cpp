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

namespace {
thread_local bool use_reference = false;
}

UseReference::UseReference() : outer_(use_reference) { use_reference = true; }
UseReference::~UseReference() { use_reference = outer_; }

const Backend& backend(Device device) {
  if (use_reference) {
    if (device != Device::cpu)
      runtime_error("convlab._C.reference runs on CPU arrays only, got arrays on ", device_name(device),
                    "; move them with .to('cpu')");
    return reference_backend();
  }
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
