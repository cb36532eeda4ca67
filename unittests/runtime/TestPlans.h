//===- TestPlans.h - Small plans for runtime unit tests ---------*- C++ -*-===//
//
// Part of the Lina project.
//
//===----------------------------------------------------------------------===//

#ifndef LINA_UNITTESTS_RUNTIME_TESTPLANS_H
#define LINA_UNITTESTS_RUNTIME_TESTPLANS_H

#include <nlohmann/json.hpp>

namespace lina::rt::test {

/// One rank; a dense op feeding an all_to_all (high) and a gradient with an
/// all_reduce split into `parts` partitions (low), written as a JSON plan.
inline nlohmann::json smallPlan(int parts = 2) {
  using nlohmann::json;
  json buffers = json::array({
      {{"id", 0},
       {"name", "x"},
       {"dtype", "f32"},
       {"shape", {8, 8}},
       {"role", "input"},
       {"init", "random"}},
      {{"id", 1},
       {"name", "w"},
       {"dtype", "f32"},
       {"shape", {8, 8}},
       {"role", "param"},
       {"init", "random"}},
      {{"id", 2},
       {"name", "y"},
       {"dtype", "f32"},
       {"shape", {8, 8}},
       {"role", "temp"}},
      {{"id", 3},
       {"name", "z"},
       {"dtype", "f32"},
       {"shape", {8, 8}},
       {"role", "output"}},
      {{"id", 4},
       {"name", "g"},
       {"dtype", "f32"},
       {"shape", {8, 8}},
       {"role", "temp"}},
      {{"id", 5},
       {"name", "r"},
       {"dtype", "f32"},
       {"shape", {8, 8}},
       {"role", "output"}},
  });
  json ops = json::array({
      {{"id", 0},
       {"kind", "dense"},
       {"inputs", {0, 1}},
       {"outputs", {2}},
       {"hold_low", true}},
      {{"id", 1},
       {"kind", "all_to_all"},
       {"inputs", {2}},
       {"outputs", {3}},
       {"group", "ep"},
       {"priority", "high"},
       {"attrs", {{"split_axis", 0}, {"concat_axis", 0}}}},
      {{"id", 2}, {"kind", "dense"}, {"inputs", {3, 1}}, {"outputs", {4}}},
  });
  int64_t per = 64 / parts;
  for (int i = 0; i < parts; ++i) {
    int in = 6 + 2 * i, out = 7 + 2 * i;
    buffers.push_back({{"id", in},
                       {"name", "gin" + std::to_string(i)},
                       {"dtype", "f32"},
                       {"shape", {per}},
                       {"view", {{"base", 4}, {"offset", i * per}}}});
    buffers.push_back({{"id", out},
                       {"name", "gout" + std::to_string(i)},
                       {"dtype", "f32"},
                       {"shape", {per}},
                       {"view", {{"base", 5}, {"offset", i * per}}}});
    ops.push_back({{"id", 3 + i},
                   {"kind", "all_reduce"},
                   {"inputs", {in}},
                   {"outputs", {out}},
                   {"group", "dp"},
                   {"priority", "low"},
                   {"partition", {{"index", i}, {"count", parts}}}});
  }
  return {
      {"format", "lina-plan"},
      {"version", 1},
      {"world_size", 1},
      {"groups", {{"ep", {{"members", {{0}}}}}, {"dp", {{"members", {{0}}}}}}},
      {"buffers", buffers},
      {"ops", ops},
      {"outputs", {3, 5}}};
}

} // namespace lina::rt::test

#endif // LINA_UNITTESTS_RUNTIME_TESTPLANS_H
