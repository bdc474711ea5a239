// MOERUN_HOST_DEVICE marks small inline functions of shared headers callable from CUDA kernels
// too; plain C++ translation units see nothing.
#pragma once

#ifdef __CUDACC__
#define MOERUN_HOST_DEVICE __host__ __device__
#else
#define MOERUN_HOST_DEVICE
#endif
