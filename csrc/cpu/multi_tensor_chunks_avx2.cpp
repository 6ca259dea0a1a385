// The multi-tensor loop compiled with -mavx2 -mfma (see CMakeLists.txt); chosen at run time only on
// CPUs that have both, together with the AVX2 loss loops.
#include "multi_tensor_chunks.cpp"
