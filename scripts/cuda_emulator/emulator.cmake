# CONVLAB_CUDA_EMULATOR=ON (included by CMakeLists.txt): the CUDA backend built from the same src/cuda files,
# translated by translate.py into plain C++ and compiled by the host compiler against cuda_runtime.h here,
# so the "cuda" device runs the kernels' logic on the CPU. The rest of the build (flags, CONVLAB_SANITIZE)
# is the project's own. CONVLAB_EMULATOR_COVERAGE=ON adds gcov instrumentation to the emulated kernels only.
option(CONVLAB_EMULATOR_COVERAGE "gcov instrumentation (-O0 --coverage) of the emulated src/cuda files" OFF)
find_package(Threads REQUIRED)

set(emu_dir ${CMAKE_BINARY_DIR}/cuda_emulator/src/cuda)
file(GLOB emu_inputs CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/src/cuda/*)
set(emu_outputs "")
set(emu_sources "")
foreach(in ${emu_inputs})
  get_filename_component(name ${in} NAME)
  string(REGEX REPLACE "\\.cu$" ".cpp" name ${name})
  add_custom_command(OUTPUT ${emu_dir}/${name}
    COMMAND ${Python_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/translate.py ${in} ${emu_dir}/${name}
    DEPENDS ${in} ${CMAKE_CURRENT_LIST_DIR}/translate.py VERBATIM)
  list(APPEND emu_outputs ${emu_dir}/${name})
  if(in MATCHES "\\.cu$")
    list(APPEND emu_sources ${emu_dir}/${name})
  endif()
endforeach()
# The translated headers must exist before any translated source compiles.
add_custom_target(cuda_emulator_sources DEPENDS ${emu_outputs})
add_dependencies(_C cuda_emulator_sources)

target_sources(_C PRIVATE ${emu_sources})
# <cuda_runtime.h> is the emulator's; "../common/x.h" from a translated file resolves through src/cuda.
target_include_directories(_C PRIVATE ${CMAKE_CURRENT_LIST_DIR} ${PROJECT_SOURCE_DIR}/src/cuda)
target_compile_definitions(_C PRIVATE CONVLAB_WITH_CUDA)
target_link_libraries(_C PRIVATE Threads::Threads)
target_compile_features(_C PRIVATE cxx_std_20)  # std::barrier
if(CONVLAB_EMULATOR_COVERAGE)
  set_source_files_properties(${emu_sources} PROPERTIES COMPILE_OPTIONS "-O0;--coverage")
  target_link_options(_C PRIVATE --coverage)
endif()
message(STATUS "convlab: CUDA backend emulated on the CPU (scripts/cuda_emulator), not compiled for a GPU")
