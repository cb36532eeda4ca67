//===- Activation.h - Activation functions for host and device --*- C++ -*-===//
//
// Part of the Lina project.
//
// The activations of dense layers and expert FFNs and their derivatives,
// written once for the cpu backend's kernels and the CUDA kernels (the
// header compiles as host code and, under nvcc, as host and device code),
// so that the two backends compute the same function.
//
//===----------------------------------------------------------------------===//

#ifndef LINA_RT_ACTIVATION_H
#define LINA_RT_ACTIVATION_H

#include "lina/rt/Plan.h"

#include <math.h>

#if defined(__CUDACC__)
#define LINA_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define LINA_HOST_DEVICE inline
#endif

namespace lina::rt::activation {

inline constexpr float kGeluC = 0.7978845608028654f; // sqrt(2 / pi)
inline constexpr float kGeluA = 0.044715f;

LINA_HOST_DEVICE float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

/// act(x); GELU is the tanh approximation.
LINA_HOST_DEVICE float apply(Activation act, float x) {
  switch (act) {
  case Activation::None:
    return x;
  case Activation::Relu:
    return x > 0 ? x : 0.0f;
  case Activation::Gelu:
    return 0.5f * x * (1.0f + tanhf(kGeluC * (x + kGeluA * x * x * x)));
  case Activation::Silu:
    return x * sigmoid(x);
  }
  return x;
}

/// d act(x) / dx.
LINA_HOST_DEVICE float derivative(Activation act, float x) {
  switch (act) {
  case Activation::None:
    return 1.0f;
  case Activation::Relu:
    return x > 0 ? 1.0f : 0.0f;
  case Activation::Gelu: {
    float t = tanhf(kGeluC * (x + kGeluA * x * x * x));
    return 0.5f * (1.0f + t) +
           0.5f * x * (1.0f - t * t) * kGeluC * (1.0f + 3.0f * kGeluA * x * x);
  }
  case Activation::Silu: {
    float s = sigmoid(x);
    return s * (1.0f + x * (1.0f - s));
  }
  }
  return 1.0f;
}

} // namespace lina::rt::activation

#undef LINA_HOST_DEVICE

#endif // LINA_RT_ACTIVATION_H
