//===- Trace.cpp - Chrome-trace / Perfetto timelines ----------------------===//
//
// Part of the Lina project.
//
//===----------------------------------------------------------------------===//

#include "lina/rt/Trace.h"
#include "lina/rt/OutputFile.h"

#include <nlohmann/json.hpp>

using nlohmann::json;
using namespace lina::rt;

void lina::rt::writeChromeTrace(
    const std::string &path, const Plan &plan,
    const std::vector<std::vector<OpInterval>> &timelines) {
  json events = json::array();
  for (size_t r = 0; r < timelines.size(); ++r) {
    events.push_back({{"name", "process_name"},
                      {"ph", "M"},
                      {"pid", r},
                      {"args", {{"name", "rank " + std::to_string(r)}}}});
    for (Queue q : {Queue::Compute, Queue::High, Queue::Low})
      events.push_back(
          {{"name", "thread_name"},
           {"ph", "M"},
           {"pid", r},
           {"tid", static_cast<int>(q)},
           {"args",
            {{"name", std::string(toString(q)) +
                          (q == Queue::Compute ? "" : " priority")}}}});
    for (const OpInterval &i : timelines[r]) {
      const Op &op = plan.ops[i.op];
      json args = {{"op", op.id}};
      if (!op.loc.empty())
        args["loc"] = op.loc;
      if (op.isCollective()) {
        args["group"] = op.group;
        args["bytes"] = plan.collectiveBytes(op);
      }
      if (op.partitionIndex >= 0)
        args["partition"] = std::to_string(op.partitionIndex) + "/" +
                            std::to_string(op.partitionCount);
      if (op.chunkIndex >= 0)
        args["chunk"] =
            std::to_string(op.chunkIndex) + "/" + std::to_string(op.chunkCount);
      events.push_back({{"name", toString(op.kind)},
                        {"cat", toString(i.queue)},
                        {"ph", "X"},
                        {"pid", r},
                        {"tid", static_cast<int>(i.queue)},
                        {"ts", i.start * 1e6},
                        {"dur", (i.end - i.start) * 1e6},
                        {"args", args}});
    }
  }
  writeOutputFile(
      path,
      json{{"traceEvents", events}, {"displayTimeUnit", "ms"}}.dump() + "\n",
      "trace");
}
