// The loss loops compiled with -mavx2 -mfma (see CMakeLists.txt): same source, 8 float lanes per
// instruction and fused multiply-adds. Chosen at run time only on CPUs that have both.
#include "loss_chunks.cpp"
