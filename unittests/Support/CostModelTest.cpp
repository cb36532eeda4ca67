//===- CostModelTest.cpp - Cost model against hand-computed values --------===//
//
// Part of the Lina project.
//
//===----------------------------------------------------------------------===//

#include "lina/Support/CostModel.h"

#include <gtest/gtest.h>

using namespace lina;

namespace {
/// 2 nodes x 4 GPUs; round numbers so that expected values are easy to
/// compute by hand: intra 800 Gb/s = 100 GB/s + 1 us, inter 80 Gb/s =
/// 10 GB/s + 10 us, 100 TFLOP/s, 8000 Gb/s = 1000 GB/s, 2 us launches.
const char *kTestCluster = R"({
    "name": "test", "nodes": 2, "gpus_per_node": 4,
    "intra_node": {"bandwidth_gbps": 800, "latency_us": 1},
    "inter_node": {"bandwidth_gbps": 80, "latency_us": 10},
    "gpu": {"flops": 100e12, "memory_bandwidth_gbps": 8000},
    "launch_latency_us": 2})";

ClusterSpec testCluster() {
  std::string error;
  auto spec = ClusterSpec::fromJson(kTestCluster, error);
  EXPECT_TRUE(spec) << error;
  return spec ? *spec : ClusterSpec();
}

TEST(CostModel, ParsesClusterFile) {
  ClusterSpec c = testCluster();
  EXPECT_EQ(c.name, "test");
  EXPECT_EQ(c.numGpus(), 8);
  EXPECT_DOUBLE_EQ(c.intraNode.bandwidth, 100e9);
  EXPECT_DOUBLE_EQ(c.interNode.latency, 10e-6);
  EXPECT_DOUBLE_EQ(c.flops, 100e12);
  EXPECT_DOUBLE_EQ(c.memoryBandwidth, 1000e9);
  EXPECT_DOUBLE_EQ(c.launchLatency, 2e-6);
}

TEST(CostModel, BuiltInClusterIsTheShippedFile) {
  std::string error;
  auto file = ClusterSpec::fromFile(std::string(LINA_SOURCE_DIR) +
                                        "/examples/clusters/a100-ib100.json",
                                    error);
  ASSERT_TRUE(file) << error;
  ClusterSpec builtIn = ClusterSpec::a100Ib100();
  EXPECT_EQ(file->name, builtIn.name);
  EXPECT_EQ(file->nodes, builtIn.nodes);
  EXPECT_EQ(file->gpusPerNode, builtIn.gpusPerNode);
  EXPECT_DOUBLE_EQ(file->intraNode.bandwidth, builtIn.intraNode.bandwidth);
  EXPECT_DOUBLE_EQ(file->intraNode.latency, builtIn.intraNode.latency);
  EXPECT_DOUBLE_EQ(file->interNode.bandwidth, builtIn.interNode.bandwidth);
  EXPECT_DOUBLE_EQ(file->interNode.latency, builtIn.interNode.latency);
  EXPECT_DOUBLE_EQ(file->flops, builtIn.flops);
  EXPECT_DOUBLE_EQ(file->memoryBandwidth, builtIn.memoryBandwidth);
  EXPECT_DOUBLE_EQ(file->launchLatency, builtIn.launchLatency);
  EXPECT_DOUBLE_EQ(file->gemmEfficiency, builtIn.gemmEfficiency);
  EXPECT_DOUBLE_EQ(file->memoryEfficiency, builtIn.memoryEfficiency);
  EXPECT_DOUBLE_EQ(file->kernelLaunch, builtIn.kernelLaunch);
  EXPECT_EQ(file->allReduceAlgorithm, builtIn.allReduceAlgorithm);
  // 100 Gb/s InfiniBand is 12.5 GB/s, of which NCCL reaches 96%.
  EXPECT_DOUBLE_EQ(builtIn.interNode.bandwidth, 12.5e9 * 0.96);
}

/// Removing any required field, or giving it a bad value, is an error that
/// names the field.
TEST(CostModel, EveryFieldIsValidated) {
  struct Case {
    const char *field; // as named in the message
    const char *from;  // text replaced in kTestCluster
    const char *to;
    const char *message;
  };
  const Case cases[] = {
      {"nodes", R"("nodes": 2,)", "", "missing field 'nodes'"},
      {"gpus_per_node", R"("gpus_per_node": 4)", R"("gpus_per_node": 1.5)",
       "field 'gpus_per_node' must be a positive integer"},
      {"intra_node", R"("intra_node")", R"("intra")", "unknown field 'intra'"},
      {"intra_node.bandwidth_gbps", R"("bandwidth_gbps": 800)",
       R"("bandwidth_gbps": 0)",
       "field 'intra_node.bandwidth_gbps' must be positive"},
      {"intra_node.latency_us", R"("latency_us": 1})", R"("latency_us": -1})",
       "field 'intra_node.latency_us' must be non-negative"},
      {"inter_node.bandwidth_gbps", R"("bandwidth_gbps": 80,)", "",
       "missing field 'inter_node.bandwidth_gbps'"},
      {"inter_node.latency_us", R"("latency_us": 10)", R"("latency_us": "10")",
       "field 'inter_node.latency_us' must be a number"},
      {"gpu.flops", R"("flops": 100e12)", R"("flops": -1)",
       "field 'gpu.flops' must be positive"},
      {"gpu.memory_bandwidth_gbps", R"(, "memory_bandwidth_gbps": 8000)", "",
       "missing field 'gpu.memory_bandwidth_gbps'"},
      {"gpu", R"({"flops": 100e12, "memory_bandwidth_gbps": 8000})", "3",
       "field 'gpu' must be an object"},
      {"launch_latency_us", R"(,
    "launch_latency_us": 2)",
       "", "missing field 'launch_latency_us'"},
      {"name", R"("name": "test")", R"("name": 7)",
       "field 'name' must be a string"},
      {"nodes", R"("nodes": 2)", R"("nodes": 2.0)",
       "field 'nodes' must be a positive integer"},
      {"gpu.flops", R"("flops": 100e12)", R"("flops": 1e999)",
       "not valid JSON"},
      {"gpu.gemm_efficiency", R"("flops": 100e12)",
       R"("flops": 100e12, "gemm_efficiency": 1.5)",
       "field 'gpu.gemm_efficiency' must be in (0, 1]"},
      {"gpu.memory_efficiency", R"("flops": 100e12)",
       R"("flops": 100e12, "memory_efficiency": 0)",
       "field 'gpu.memory_efficiency' must be in (0, 1]"},
      {"gpu.kernel_launch_us", R"("flops": 100e12)",
       R"("flops": 100e12, "kernel_launch_us": -3)",
       "field 'gpu.kernel_launch_us' must be non-negative"},
      {"gpu.peak", R"("flops": 100e12)", R"("flops": 100e12, "peak": 1)",
       "unknown field 'gpu.peak'"},
      {"intra_node.efficiency", R"("latency_us": 1})",
       R"("latency_us": 1, "efficiency": "high"})",
       "field 'intra_node.efficiency' must be a number"},
      {"all_reduce_algorithm", R"("name": "test")",
       R"("name": "test", "all_reduce_algorithm": "butterfly")",
       "field 'all_reduce_algorithm' must be \"ring\" or \"tree\""},
      {"nodes x gpus_per_node", R"("nodes": 2)", R"("nodes": 1048576)",
       "exceeds the limit"},
  };
  for (const Case &c : cases) {
    std::string text = kTestCluster;
    size_t at = text.find(c.from);
    ASSERT_NE(at, std::string::npos) << c.field;
    text.replace(at, std::string(c.from).size(), c.to);
    std::string error;
    EXPECT_FALSE(ClusterSpec::fromJson(text, error)) << c.field;
    EXPECT_NE(error.find(c.message), std::string::npos)
        << c.field << ": " << error;
  }
}

TEST(CostModel, OptionalFieldsHaveIdealDefaults) {
  ClusterSpec c = testCluster();
  EXPECT_DOUBLE_EQ(c.gemmEfficiency, 1);
  EXPECT_DOUBLE_EQ(c.memoryEfficiency, 1);
  // Without its own field, a kernel launch costs a collective launch.
  EXPECT_DOUBLE_EQ(c.kernelLaunch, 2e-6);
  EXPECT_EQ(c.allReduceAlgorithm, AllReduceAlgorithm::Ring);
}

TEST(CostModel, ComputeTimeUsesKernelClassAndLaunches) {
  std::string error;
  std::string text = kTestCluster;
  text.replace(
      text.find(R"("flops": 100e12)"), 15,
      R"("flops": 100e12, "gemm_efficiency": 0.5, "memory_efficiency": 0.5, "kernel_launch_us": 3)");
  auto spec = ClusterSpec::fromJson(text, error);
  ASSERT_TRUE(spec) << error;
  CostModel m(*spec);
  // 1e12 FLOPs at 50 TFLOP/s = 20 ms; 1e9 bytes at 500 GB/s = 2 ms.
  EXPECT_DOUBLE_EQ(m.computeTime(1e12, 1e9, KernelClass::Gemm, 4),
                   20e-3 + 12e-6);
  // Memory-bound kernels ignore their FLOPs.
  EXPECT_DOUBLE_EQ(m.computeTime(1e12, 1e9, KernelClass::Memory, 1),
                   2e-3 + 3e-6);
  EXPECT_DOUBLE_EQ(m.computeTime(1e12, 1e9), 20e-3 + 3e-6);
}

TEST(CostModel, ShippedClusterFilesLoad) {
  for (const char *name :
       {"a100-ib100.json", "a100-ib100-x8.json", "h100-node.json"}) {
    std::string error;
    auto spec = ClusterSpec::fromFile(
        std::string(LINA_SOURCE_DIR) + "/examples/clusters/" + name, error);
    EXPECT_TRUE(spec) << name << ": " << error;
  }
}

TEST(CostModel, RejectsBadClusterFiles) {
  std::string error;
  EXPECT_FALSE(ClusterSpec::fromJson("{", error));
  EXPECT_NE(error.find("not valid JSON"), std::string::npos) << error;

  EXPECT_FALSE(
      ClusterSpec::fromJson(R"({"nodes": 0, "gpus_per_node": 4})", error));
  EXPECT_NE(error.find("'nodes' must be a positive integer"), std::string::npos)
      << error;

  EXPECT_FALSE(ClusterSpec::fromJson(
      R"({"nodes": 1, "gpus_per_node": 4,
          "intra_node": {"bandwidth_gbps": -1, "latency_us": 1}})",
      error));
  EXPECT_NE(error.find("'intra_node.bandwidth_gbps' must be positive"),
            std::string::npos)
      << error;

  EXPECT_FALSE(ClusterSpec::fromJson(R"({"nodes": 1, "gpus": 4})", error));
  EXPECT_NE(error.find("unknown field 'gpus'"), std::string::npos) << error;

  EXPECT_FALSE(ClusterSpec::fromFile("/nonexistent/cluster.json", error));
  EXPECT_NE(error.find("cannot open cluster file"), std::string::npos);
}

TEST(CostModel, RingAllReduceInsideANode) {
  CostModel m(testCluster());
  // 4 ranks, 1 GB: 2*3/4 * 1e9 / 100e9 = 15 ms; latency 6 us; launch 2 us.
  EXPECT_NEAR(m.allReduceTime(1e9, 4), 15e-3 + 6e-6 + 2e-6, 1e-12);
  EXPECT_EQ(m.allReduceTime(1e9, 1), 0);
}

TEST(CostModel, RingAllReduceAcrossNodes) {
  CostModel m(testCluster());
  // 8 ranks = 2 nodes of 4: every ring hop carries 2*7/8 * 1e9 bytes, the
  // node crossings at 10 GB/s: 175 ms. Latency 2*3*1 + 2*1*10 us, launch
  // 2 us.
  EXPECT_NEAR(m.allReduceTime(1e9, 8), 175e-3 + 6e-6 + 20e-6 + 2e-6, 1e-12);
}

TEST(CostModel, TreeAllReduceAcrossNodes) {
  std::string error;
  std::string text = kTestCluster;
  text.replace(text.find(R"("name": "test")"), 14,
               R"("name": "test", "all_reduce_algorithm": "tree")");
  auto spec = ClusterSpec::fromJson(text, error);
  ASSERT_TRUE(spec) << error;
  CostModel m(*spec);
  // Intra: 2*3/4 * 1e9/100e9 = 15 ms + 6 us. Between the 2 nodes: 2*1/2 *
  // 1e9 / 10e9 = 100 ms + 2*ceil(log2 2)*10 us. Launch 2 us.
  EXPECT_NEAR(m.allReduceTime(1e9, 8), 15e-3 + 6e-6 + 100e-3 + 20e-6 + 2e-6,
              1e-12);
}

TEST(CostModel, PairwiseAllToAll) {
  CostModel m(testCluster());
  // Inside a node: 3/4 * 1e9 / 100e9 = 7.5 ms, 3 us latency, 2 us launch.
  EXPECT_NEAR(m.allToAllTime(1e9, 4), 7.5e-3 + 3e-6 + 2e-6, 1e-12);
  // Across 2 nodes: intra 3/8 * 1e9/100e9 = 3.75 ms; inter 4/8 * 1e9 * 4 /
  // 10e9 = 200 ms (the node's 4 GPUs share the interface); 7 * 10 us.
  EXPECT_NEAR(m.allToAllTime(1e9, 8), 200e-3 + 70e-6 + 2e-6, 1e-12);
}

TEST(CostModel, RooflineCompute) {
  CostModel m(testCluster());
  EXPECT_NEAR(m.computeTime(1e12, 1e6), 10e-3 + 2e-6, 1e-12); // compute bound
  EXPECT_NEAR(m.computeTime(1e6, 1e10), 10e-3 + 2e-6, 1e-12); // memory bound
}

TEST(CostModel, PartitionSizeAmortisesLatency) {
  CostModel m(testCluster());
  int64_t s = m.choosePartitionBytes(8);
  // Power of two, at least 1 MiB, and the latency part is <= 5% of the
  // transfer time while the next smaller size would not be.
  EXPECT_GE(s, int64_t(1) << 20);
  EXPECT_EQ(s & (s - 1), 0);
  double fixed = m.allReduceTime(0, 8);
  EXPECT_LE(fixed, 0.05 * (m.allReduceTime(s, 8) - fixed));
  if (s > (int64_t(1) << 20)) {
    EXPECT_GT(fixed, 0.05 * (m.allReduceTime(s / 2, 8) - fixed));
  }
  // By hand, 2 nodes: latency terms 2*3*1 + 2*1*10 + 2 = 28 us; transfer
  // 2*7/8 / 10e9 = 1.75e-10 s per byte; 28e-6 <= 0.05 * 1.75e-10 * S needs
  // S >= 3.2e6: 4 MiB.
  EXPECT_EQ(s, int64_t(4) << 20);
  // One node: 2*3*1 + 2 = 8 us against 1.5e-11 s per byte: S >= 10.7e6,
  // 16 MiB.
  EXPECT_EQ(m.choosePartitionBytes(4), int64_t(16) << 20);
  // A 0.1% bound would need S >= 8e-6 / (0.001 * 1.5e-11) = 533 MB: the
  // 64 MiB cap applies.
  EXPECT_EQ(m.choosePartitionBytes(4, 0.001), int64_t(64) << 20);
}

TEST(CostModel, PipelineTimeFormula) {
  CostModel m(testCluster());
  // 4 ranks in one node. net(K) = 3/4 * 64e6 / K / 100e9 + 3 us + 2 us =
  // 480/K + 5 us. comp(K) = max(4e12 / K / 100e12, 1e8 / K / 1000e9) + 2 us
  // = 40000/K + 2 us.
  ExpertWork work{64e6, 4e12, 1e8, 0};
  // K = 1: 2 * 485 + 40002 us.
  EXPECT_NEAR(m.pipelineTime(work, 4, 1), 40972e-6, 1e-9);
  // K = 4: 2 * 125 + 10002 + 3 * max(250, 10002) us.
  EXPECT_NEAR(m.pipelineTime(work, 4, 4), 40258e-6, 1e-9);
  // Weights are read by every chunk: flops 1e9, token bytes 1e6, weights
  // 5e8. comp(4) = max(2.5 us, (0.25e6 + 5e8) / 1e12 s) + 2 us = 502.25 us;
  // net(4) = 125 us; 250 + 502.25 + 3 * 502.25 us.
  EXPECT_NEAR(m.pipelineTime(ExpertWork{64e6, 1e9, 1e6, 5e8}, 4, 4), 2259e-6,
              1e-9);
}

TEST(CostModel, PipelineChoiceBalancesStages) {
  CostModel m(testCluster());
  // Compute-heavy (see PipelineTimeFormula): K = 2, 4, 8, 16 give 40494,
  // 40258, 40146 and 70 + 16 * 2502 = 40102 us: 16 chunks. A chunk's FFN
  // (2502 us) already covers its all-to-alls (2 * 35 us): one expert.
  PipelineChoice c =
      m.choosePipeline(ExpertWork{64e6, 4e12, 1e8, 0}, 4, 1, 16, 8);
  EXPECT_EQ(c.chunks, 16);
  EXPECT_NEAR(c.estimatedTime, 40102e-6, 1e-9);
  EXPECT_EQ(c.expertsPerDevice, 1);
  // Network-heavy: comp(K) = 10/K + 2 us, net(K) = 480/K + 5 us; K = 1
  // gives 2 * 485 + 12 = 982 us, K = 2 gives 490 + 7 + 490 = 987 us: no
  // chunking. The FFN (10 p + 2 us with p experts) reaches 2 * 485 us at
  // p = 97: 128 experts per device, or the limit.
  ExpertWork small{64e6, 1e9, 1e6, 0};
  PipelineChoice s = m.choosePipeline(small, 4, 1, 16, 1024);
  EXPECT_EQ(s.chunks, 1);
  EXPECT_NEAR(s.estimatedTime, 982e-6, 1e-9);
  EXPECT_EQ(s.expertsPerDevice, 128);
  EXPECT_EQ(m.choosePipeline(small, 4, 1, 16, 8).expertsPerDevice, 8);
  // When the work given is that of 2 experts per device, p experts do p / 2
  // times as much: the balance needs p / 2 >= 97, beyond the limit of 64.
  EXPECT_EQ(m.choosePipeline(small, 4, 2, 16, 64).expertsPerDevice, 64);
  // Never more chunks than allowed.
  EXPECT_EQ(m.choosePipeline(ExpertWork{64e6, 4e12, 1e8, 0}, 4, 1, 1, 8).chunks,
            1);
}
} // namespace
