//===- CudaBackendTest.cpp - The cuda backend against the cpu backend -----===//
//
// Part of the Lina project.
//
// A single-rank MoE training step (Inputs/moe_train_1rank.json: gate,
// dispatch, all_to_all, expert_ffn, combine, dense, copy, their gradients
// and all_reduce partitions) runs through the shared Scheduler on the cpu
// and the cuda backend with the same inputs and weights; the outputs must
// agree within 1e-3 relative + 1e-4 absolute (f32 GEMMs summed in another
// order, device expf/tanhf within 2 ulp, through a forward and a backward
// pass). Without a GPU each test is skipped with the reason.
//
//===----------------------------------------------------------------------===//

#include "GpuTestUtil.h"

#include "lina/rt/CpuBackend.h"
#include "lina/rt/Scheduler.h"
#include "lina/rt/cuda/CudaBackend.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>

using namespace lina::rt;
using namespace lina::rt::cuda;
using namespace lina::rt::cuda::test;

namespace {
nlohmann::json loadJson(const std::string &name) {
  std::ifstream in(std::string(LINA_CUDA_TEST_INPUTS) + "/" + name);
  return nlohmann::json::parse(in);
}

template <typename B>
std::vector<std::vector<float>> runPlan(const Plan &plan, Policy policy,
                                        int steps = 2) {
  B backend(plan, 0, 60.0);
  backend.initialize(1);
  Scheduler scheduler(plan, {policy, 0});
  for (int i = 0; i < steps; ++i)
    scheduler.run(backend);
  std::vector<std::vector<float>> outs;
  for (int id : plan.outputs)
    outs.push_back(backend.read(id));
  return outs;
}

void expectSameOutputs(const Plan &plan,
                       const std::vector<std::vector<float>> &got,
                       const std::vector<std::vector<float>> &want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_LE(worstError(got[i], want[i], 1e-4, 1e-3), 1.0)
        << "output " << i << " ('" << plan.buffers[plan.outputs[i]].name
        << "')";
}
} // namespace

TEST(CudaBackend, TrainingStepMatchesCpu) {
  LINA_REQUIRE_GPU();
  Plan plan =
      parsePlan(loadJson("moe_train_1rank.json").dump(), "moe_train_1rank");
  auto cpu = runPlan<CpuBackend>(plan, Policy::Fifo);
  auto gpu = runPlan<CudaBackend>(plan, Policy::Lina);
  expectSameOutputs(plan, gpu, cpu);
  // Not vacuous: the step produced non-zero gradients.
  double norm = 0;
  for (float v : gpu[2])
    norm += std::abs(v);
  EXPECT_GT(norm, 0.0);
}

TEST(CudaBackend, FifoAndLinaPoliciesAgree) {
  LINA_REQUIRE_GPU();
  Plan plan =
      parsePlan(loadJson("moe_train_1rank.json").dump(), "moe_train_1rank");
  auto lina = runPlan<CudaBackend>(plan, Policy::Lina);
  auto fifo = runPlan<CudaBackend>(plan, Policy::Fifo);
  for (size_t i = 0; i < lina.size(); ++i)
    EXPECT_EQ(lina[i], fifo[i]) << "output " << i;
}

TEST(CudaBackend, AllTokensToOneExpertPairAndEmptyExperts) {
  LINA_REQUIRE_GPU();
  // A zero router: every logit ties, so every token picks experts 0 and 1
  // (ties go to the lower id); 64 tokens exceed the capacity 40, so some
  // are dropped, and experts 2 and 3 receive no tokens.
  nlohmann::json j = loadJson("moe_train_1rank.json");
  j["buffers"][1]["init"] = "zero";
  j["buffers"][1]["role"] = "param";
  Plan plan = parsePlan(j.dump(), "one_expert");
  auto cpu = runPlan<CpuBackend>(plan, Policy::Fifo);
  auto gpu = runPlan<CudaBackend>(plan, Policy::Lina);
  expectSameOutputs(plan, gpu, cpu);
}

TEST(CudaBackend, SplitExpertGradientMatchesTheFusedOneAndCpu) {
  LINA_REQUIRE_GPU();
  // The training step plus expert_ffn_grad_input and expert_ffn_grad_weight
  // on the operands of its expert_ffn_grad (op 13: dy 18, in 5, w1 6, w2 7;
  // El=4, N=40, H=32, F=48), writing din, act, dz, dw1 and dw2 buffers of
  // their own.
  nlohmann::json j = loadJson("moe_train_1rank.json");
  auto buffer = [&](const char *name, nlohmann::json shape, const char *role) {
    int id = static_cast<int>(j["buffers"].size());
    j["buffers"].push_back({{"id", id},
                            {"name", name},
                            {"dtype", "f32"},
                            {"shape", shape},
                            {"role", role},
                            {"init", "none"}});
    return id;
  };
  ASSERT_EQ(j["ops"][13]["kind"], "expert_ffn_grad");
  j["buffers"][19]["role"] = "output"; // the fused din
  int din = buffer("din_split", {4, 40, 32}, "output");
  int act = buffer("act", {4, 40, 48}, "temp");
  int dz = buffer("dz_split", {4, 40, 48}, "temp");
  int dw1 = buffer("dw1_split", {4, 32, 48}, "output");
  int dw2 = buffer("dw2_split", {4, 48, 32}, "output");
  int next = static_cast<int>(j["ops"].size());
  j["ops"].push_back({{"id", next},
                      {"kind", "expert_ffn_grad_input"},
                      {"inputs", {18, 5, 6, 7}},
                      {"outputs", {din, act, dz}},
                      {"attrs", {{"activation", "gelu"}}}});
  j["ops"].push_back({{"id", next + 1},
                      {"kind", "expert_ffn_grad_weight"},
                      {"inputs", {18, 5, act, dz}},
                      {"outputs", {dw1, dw2}}});
  // Outputs: fused din, dw1, dw2, then the split ones.
  j["outputs"] = {19, 20, 21, din, dw1, dw2};
  Plan plan = parsePlan(j.dump(), "moe_train_split");
  auto cpu = runPlan<CpuBackend>(plan, Policy::Fifo);
  auto gpu = runPlan<CudaBackend>(plan, Policy::Lina);
  expectSameOutputs(plan, gpu, cpu);
  // On the device the halves run the fused op's GEMMs on the same
  // operands; only cuBLAS's choice of kernel by alignment may differ.
  for (size_t i = 0; i < 3; ++i)
    EXPECT_LE(worstError(gpu[3 + i], gpu[i], 1e-6, 1e-5), 1.0)
        << "output '" << plan.buffers[plan.outputs[3 + i]].name << "'";
  // On the cpu they are the same bits.
  for (size_t i = 0; i < 3; ++i)
    EXPECT_EQ(cpu[3 + i], cpu[i]) << "output " << i;
}

TEST(CudaBackend, ExpertWeightGradsMatchTheWeightHalfAndCpu) {
  LINA_REQUIRE_GPU();
  // The training step plus expert_ffn_grad_input on the operands of its
  // expert_ffn_grad (op 13: dy 18, in 5, w1 6, w2 7; El=4, N=40, H=32,
  // F=48), then expert_ffn_grad_weight and its two GEMMs as
  // expert_weight_grad(in, dz) -> dw1 and expert_weight_grad(act, dy) -> dw2.
  nlohmann::json j = loadJson("moe_train_1rank.json");
  auto buffer = [&](const char *name, nlohmann::json shape, const char *role) {
    int id = static_cast<int>(j["buffers"].size());
    j["buffers"].push_back({{"id", id},
                            {"name", name},
                            {"dtype", "f32"},
                            {"shape", shape},
                            {"role", role},
                            {"init", "none"}});
    return id;
  };
  ASSERT_EQ(j["ops"][13]["kind"], "expert_ffn_grad");
  int din = buffer("din_split", {4, 40, 32}, "temp");
  int act = buffer("act", {4, 40, 48}, "temp");
  int dz = buffer("dz_split", {4, 40, 48}, "temp");
  int dw1 = buffer("dw1_half", {4, 32, 48}, "output");
  int dw2 = buffer("dw2_half", {4, 48, 32}, "output");
  int dw1s = buffer("dw1_gemm", {4, 32, 48}, "output");
  int dw2s = buffer("dw2_gemm", {4, 48, 32}, "output");
  int next = static_cast<int>(j["ops"].size());
  j["ops"].push_back({{"id", next},
                      {"kind", "expert_ffn_grad_input"},
                      {"inputs", {18, 5, 6, 7}},
                      {"outputs", {din, act, dz}},
                      {"attrs", {{"activation", "gelu"}}}});
  j["ops"].push_back({{"id", next + 1},
                      {"kind", "expert_ffn_grad_weight"},
                      {"inputs", {18, 5, act, dz}},
                      {"outputs", {dw1, dw2}}});
  j["ops"].push_back({{"id", next + 2},
                      {"kind", "expert_weight_grad"},
                      {"inputs", {5, dz}},
                      {"outputs", {dw1s}}});
  j["ops"].push_back({{"id", next + 3},
                      {"kind", "expert_weight_grad"},
                      {"inputs", {act, 18}},
                      {"outputs", {dw2s}}});
  // Outputs: the fused dw1, dw2, the weight half's, then the GEMMs'.
  j["outputs"] = {20, 21, dw1, dw2, dw1s, dw2s};
  Plan plan = parsePlan(j.dump(), "moe_train_weight_grad");
  auto cpu = runPlan<CpuBackend>(plan, Policy::Fifo);
  auto gpu = runPlan<CudaBackend>(plan, Policy::Lina);
  expectSameOutputs(plan, gpu, cpu);
  // On the device they are the weight half's GEMMs on the same operands;
  // only cuBLAS's choice of kernel by alignment may differ.
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_LE(worstError(gpu[4 + i], gpu[2 + i], 1e-6, 1e-5), 1.0)
        << "output '" << plan.buffers[plan.outputs[4 + i]].name << "'";
    EXPECT_LE(worstError(gpu[4 + i], gpu[i], 1e-6, 1e-5), 1.0)
        << "output '" << plan.buffers[plan.outputs[4 + i]].name << "'";
  }
  // On the cpu they are the same bits, and those of expert_ffn_grad.
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(cpu[4 + i], cpu[2 + i]) << "output " << 4 + i;
    EXPECT_EQ(cpu[4 + i], cpu[i]) << "output " << 4 + i;
  }
}

TEST(CudaBackend, Bf16StepFollowsTheF32Step) {
  LINA_REQUIRE_GPU();
  // With a zero router every logit ties in any precision, so bf16 and f32
  // route identically and differ only by bf16 storage (2^-9 relative per
  // rounding, over a few ops): 0.05 absolute + 5% relative.
  nlohmann::json f32 = loadJson("moe_train_1rank.json");
  f32["buffers"][1]["init"] = "zero";
  nlohmann::json bf16 = f32;
  for (auto &b : bf16["buffers"])
    if (b["dtype"] == "f32")
      b["dtype"] = "bf16";
  Plan plan = parsePlan(bf16.dump(), "moe_train_bf16");
  auto gpu = runPlan<CudaBackend>(plan, Policy::Lina);
  auto cpu = runPlan<CpuBackend>(parsePlan(f32.dump(), "f32"), Policy::Fifo);
  for (size_t i : {0, 2}) // z and dx
    EXPECT_LE(worstError(gpu[i], cpu[i], 0.05, 0.05), 1.0)
        << "output '" << plan.buffers[plan.outputs[i]].name << "'";
  for (const auto &out : gpu)
    for (float v : out)
      ASSERT_TRUE(std::isfinite(v));
}

TEST(CudaBackend, ExpertIdOutOfRangeNamesTheOp) {
  LINA_REQUIRE_GPU();
  nlohmann::json j = {{"format", "lina-plan"},
                      {"version", 1},
                      {"world_size", 1},
                      {"groups", nlohmann::json::object()},
                      {"buffers",
                       {{{"id", 0},
                         {"name", "x"},
                         {"dtype", "f32"},
                         {"shape", {6, 4}},
                         {"role", "input"},
                         {"init", "random"}},
                        {{"id", 1},
                         {"name", "ids"},
                         {"dtype", "i32"},
                         {"shape", {6, 1}},
                         {"role", "input"},
                         {"init", "zero"}},
                        {{"id", 2},
                         {"name", "buf"},
                         {"dtype", "f32"},
                         {"shape", {3, 4, 4}},
                         {"role", "output"}}}},
                      {"ops",
                       {{{"id", 0},
                         {"kind", "dispatch"},
                         {"inputs", {0, 1}},
                         {"outputs", {2}},
                         {"loc", "bad.mlir:3:1"}}}},
                      {"outputs", {2}}};
  Plan plan = parsePlan(j.dump(), "bad_ids");
  CudaBackend backend(plan, 0, 10.0);
  backend.initialize(1);
  backend.write(1, {0, 1, 2, 7, 1, 0});
  Scheduler scheduler(plan, {Policy::Lina, 0});
  try {
    scheduler.run(backend);
    FAIL() << "an expert id of 7 with 3 experts was accepted";
  } catch (const PlanError &e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("op 0 (dispatch"), std::string::npos) << msg;
    EXPECT_NE(msg.find("token 3 is routed to expert 7, outside [0, 3)"),
              std::string::npos)
        << msg;
  }
}

//===----------------------------------------------------------------------===//
// Realistic sizes (hidden 1024, 16 experts, 4096 tokens), f32/bf16/f16
//===----------------------------------------------------------------------===//

namespace {
/// moe_train_1rank.json with every shape scaled to T tokens, hidden H, ffn
/// F, E experts. Routing is pinned so that a near-tie in the router cannot
/// route a token differently on the two backends: `all` sends every token
/// to every expert (top-k = E), `tied` zeroes the router so every token
/// goes to experts 0 and 1; the capacity holds every token.
nlohmann::json scaledPlan(int64_t T, int64_t H, int64_t F, int64_t E, bool all,
                          const std::string &dtype) {
  nlohmann::json j = loadJson("moe_train_1rank.json");
  int64_t k = all ? E : 2, C = T;
  using S = std::vector<int64_t>;
  S TH{T, H}, HH{H, H}, HE{H, E}, TK{T, k}, ECH{E, C, H};
  std::map<std::string, S> shapes = {
      {"x", TH},         {"wg", HE},         {"ids", TK},        {"gw", TK},
      {"w1", {E, H, F}}, {"w2", {E, F, H}},  {"y", TH},          {"wd", HH},
      {"z", TH},         {"dz", TH},         {"dy", TH},         {"dwd", HH},
      {"dgw", TK},       {"dw1", {E, H, F}}, {"dw2", {E, F, H}}, {"dx1", TH},
      {"dx2", TH},       {"dwg", HE},        {"dx", TH},         {"dwdr", HH},
      {"dwgr", HE},      {"zc", {32, 32}}};
  for (const char *n :
       {"buf", "bufa", "eo", "eob", "deob", "deo", "dbufa", "dbuf"})
    shapes[n] = ECH;
  int64_t half = H * H / 2;
  for (auto &b : j["buffers"]) {
    std::string name = b["name"];
    if (b.contains("view")) {
      b["shape"] = {half};
      b["view"]["offset"] = name.back() == '1' ? half : 0;
    } else {
      b["shape"] = shapes.at(name);
    }
    if (b["dtype"] == "f32")
      b["dtype"] = dtype;
    if (!all && name == "wg")
      b["init"] = "zero";
  }
  for (auto &op : j["ops"])
    if (op["kind"] == "gate") {
      op["attrs"]["num_experts"] = E;
      op["attrs"]["top_k"] = k;
      op["attrs"]["capacity_factor"] = double(C * E) / double(k * T);
    }
  return j;
}

struct LargeCase {
  const char *dtype;
  bool all;
  double rmsTol, relTol; ///< per element: rmsTol * rms(want) + relTol * |want|
};

class CudaBackendLarge : public ::testing::TestWithParam<LargeCase> {};
} // namespace

TEST_P(CudaBackendLarge, MatchesCpuF32Step) {
  LINA_REQUIRE_GPU();
  if (!std::getenv("LINA_CUDA_LARGE"))
    GTEST_SKIP() << "set LINA_CUDA_LARGE=1 to run (bench/run_gpu.sh does)";
  LargeCase c = GetParam();
  const int64_t T = 4096, H = 1024, F = 1024, E = 16;
  Plan gpuPlan =
      parsePlan(scaledPlan(T, H, F, E, c.all, c.dtype).dump(), "large");
  Plan cpuPlan =
      parsePlan(scaledPlan(T, H, F, E, c.all, "f32").dump(), "large_f32");
  auto gpu = runPlan<CudaBackend>(gpuPlan, Policy::Lina, 1);
  auto cpu = runPlan<CpuBackend>(cpuPlan, Policy::Fifo, 1);
  ASSERT_EQ(gpu.size(), cpu.size());
  for (size_t i = 0; i < gpu.size(); ++i) {
    const std::string name = gpuPlan.buffers[gpuPlan.outputs[i]].name;
    ASSERT_EQ(gpu[i].size(), cpu[i].size()) << name;
    double sq = 0, diff = 0;
    for (size_t j = 0; j < cpu[i].size(); ++j) {
      sq += double(cpu[i][j]) * cpu[i][j];
      double d = double(gpu[i][j]) - cpu[i][j];
      diff += d * d;
    }
    double rms = std::sqrt(sq / std::max<size_t>(cpu[i].size(), 1));
    EXPECT_GT(rms, 0.0) << "output '" << name << "' is all zeros: vacuous";
    EXPECT_LE(std::sqrt(diff), 4 * c.relTol * std::sqrt(sq) + 1e-30)
        << "output '" << name << "': relative Frobenius error";
    EXPECT_LE(worstError(gpu[i], cpu[i], c.rmsTol * rms, c.relTol), 1.0)
        << "output '" << name << "' (rms " << rms << ")";
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, CudaBackendLarge,
                         ::testing::Values(LargeCase{"f32", true, 1e-4, 1e-3},
                                           LargeCase{"f32", false, 1e-4, 1e-3},
                                           LargeCase{"bf16", true, 5e-2, 5e-2},
                                           LargeCase{"bf16", false, 5e-2, 5e-2},
                                           LargeCase{"f16", true, 1e-2, 1e-2},
                                           LargeCase{"f16", false, 1e-2, 1e-2}),
                         [](const auto &info) {
                           return std::string(info.param.dtype) +
                                  (info.param.all ? "_all" : "_tied");
                         });
