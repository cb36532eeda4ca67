//===- Trace.h - Chrome-trace / Perfetto timelines --------------*- C++ -*-===//
//
// Part of the Lina project.
//
//===----------------------------------------------------------------------===//

#ifndef LINA_RT_TRACE_H
#define LINA_RT_TRACE_H

#include "lina/rt/Scheduler.h"

#include <string>
#include <vector>

namespace lina::rt {

/// Writes a Chrome-trace JSON file (loadable in Perfetto or
/// chrome://tracing): a process per rank, a thread per queue (compute,
/// high, low), one complete event per op. `timelines[r]` is rank r's; times
/// in seconds. The file is replaced atomically; throws OutputError (naming the
/// file and the reason) if it cannot be written, leaving an old file intact.
void writeChromeTrace(const std::string &path, const Plan &plan,
                      const std::vector<std::vector<OpInterval>> &timelines);

} // namespace lina::rt

#endif // LINA_RT_TRACE_H
