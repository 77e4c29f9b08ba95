# hashhop::torch — LibTorch as an imported target, from a torch package directory (HASHHOP_TORCH_DIR):
# .deps/torch here (CPU libraries only), or the GPU machine's own torch with HASHHOP_TORCH_CUDA=ON.
# We link the libraries directly rather than through TorchConfig.cmake, which insists on finding
# CUDA, cuDNN and NVTX development files even for code that only calls ATen.
# HASHHOP_TORCH_DIR=python asks the python3 on PATH where its torch package lives (the GPU preset).
set(HASHHOP_TORCH_DIR "${PROJECT_SOURCE_DIR}/.deps/torch" CACHE STRING "Root of a torch package (the folder holding lib/ and include/), or 'python'")
option(HASHHOP_TORCH_CUDA "Link torch's CUDA libraries (GPU machine only)" OFF)
if(HASHHOP_TORCH_DIR STREQUAL "python")
  execute_process(COMMAND python3 -c "import os, torch; print(os.path.dirname(torch.__file__))"
                  OUTPUT_VARIABLE _python_torch OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE _python_torch_rc)
  if(NOT _python_torch_rc EQUAL 0 OR NOT _python_torch)
    message(FATAL_ERROR "HASHHOP_TORCH_DIR=python: python3 cannot import torch")
  endif()
  set(HASHHOP_TORCH_DIR "${_python_torch}" CACHE STRING "Root of a torch package" FORCE)
endif()
message(STATUS "hashhop: LibTorch from ${HASHHOP_TORCH_DIR}")

set(_torch_lib "${HASHHOP_TORCH_DIR}/lib")
if(NOT EXISTS "${_torch_lib}/libtorch_cpu.so")
  message(FATAL_ERROR "LibTorch not found in ${HASHHOP_TORCH_DIR}: run scripts/setup.sh (or pass -DHASHHOP_TORCH_DIR=...)")
endif()
add_library(hashhop_torch_libs INTERFACE)
target_include_directories(hashhop_torch_libs SYSTEM INTERFACE
  "${HASHHOP_TORCH_DIR}/include" "${HASHHOP_TORCH_DIR}/include/torch/csrc/api/include")
target_compile_definitions(hashhop_torch_libs INTERFACE _GLIBCXX_USE_CXX11_ABI=1)
set(_torch_libraries "${_torch_lib}/libtorch_cpu.so" "${_torch_lib}/libc10.so")
if(HASHHOP_TORCH_CUDA)
  list(PREPEND _torch_libraries "${_torch_lib}/libtorch_cuda.so" "${_torch_lib}/libc10_cuda.so")
  target_compile_definitions(hashhop_torch_libs INTERFACE USE_CUDA=1)
  # --no-as-needed keeps libtorch_cuda loaded, which registers the CUDA kernels of every ATen op.
  # Never --allow-shlib-undefined: with it the binaries linked against PyPI's torch aborted at exit with
  # "free(): invalid pointer" in std::locale::~locale (docs/learning-log.md, section 8).
  target_link_options(hashhop_torch_libs INTERFACE "LINKER:--no-as-needed")
endif()
target_link_libraries(hashhop_torch_libs INTERFACE ${_torch_libraries})
set(CMAKE_BUILD_RPATH "${_torch_lib}")
add_library(hashhop::torch ALIAS hashhop_torch_libs)
