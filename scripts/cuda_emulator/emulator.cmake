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
  # __gcov_reset / __gcov_dump linked in and exported: select_profile.py takes each test's counters alone.
  target_link_options(_C PRIVATE --coverage -Wl,--undefined=__gcov_reset,--undefined=__gcov_dump)
endif()

# Racecheck: ThreadSanitizer cannot run inside this machine's CPython, so the same emulated kernels, the CPU
# kernels and the frontends are linked into a C++ program that compares the two devices
# (tests/cuda_race/race_driver.cpp), with _C's flags (CONVLAB_SANITIZE included). Built only when asked for:
# check.sh thread builds this target alone.
add_executable(cuda_race_driver EXCLUDE_FROM_ALL ${PROJECT_SOURCE_DIR}/tests/cuda_race/race_driver.cpp
               ${CONVLAB_CPU_SOURCES} ${emu_sources})
add_dependencies(cuda_race_driver cuda_emulator_sources)
foreach(property COMPILE_OPTIONS COMPILE_DEFINITIONS INCLUDE_DIRECTORIES LINK_OPTIONS)
  get_target_property(value _C ${property})
  if(value)
    set_property(TARGET cuda_race_driver PROPERTY ${property} ${value})
  endif()
endforeach()
target_link_libraries(cuda_race_driver PRIVATE OpenMP::OpenMP_CXX Threads::Threads)
message(STATUS "convlab: CUDA backend emulated on the CPU (scripts/cuda_emulator), not compiled for a GPU")
