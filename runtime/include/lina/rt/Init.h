//===- Init.h - Initial values of a plan's buffers --------------*- C++ -*-===//
//
// Part of the Lina project.
//
// The values every backend puts in a plan's inputs and parameters (buffers
// with "init": "random"). They depend only on the seed, the buffer's name
// and the rank, so that the cpu and cuda backends compute the same step,
// two plans of one model (scheduled and unscheduled) see the same values,
// and lina-run --check can compare them.
//
//===----------------------------------------------------------------------===//

#ifndef LINA_RT_INIT_H
#define LINA_RT_INIT_H

#include "lina/rt/Plan.h"

#include <cstdint>

namespace lina::rt {

/// Writes buffer.numElements() deterministic values to `out`: uniform in
/// [-a, a] with a = 1/sqrt(fan-in) for parameters (fan-in: the
/// second-to-last dimension, or the only one) and a = 1 for inputs, from a
/// generator seeded by `seed`, `rank` and the buffer's name.
void fillRandom(const Buffer &buffer, int rank, uint64_t seed, float *out);

} // namespace lina::rt

#endif // LINA_RT_INIT_H
