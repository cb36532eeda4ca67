//===- CostModelTest.cpp - Cost model against hand-computed values --------===//
//
// Part of the Lina project.
//
//===----------------------------------------------------------------------===//

#include "lina/Analysis/CostModel.h"

#include <gtest/gtest.h>

using namespace lina;

namespace {
/// 2 nodes x 4 GPUs; round numbers so that expected values are easy to
/// compute by hand: intra 100 GB/s + 1 us, inter 10 GB/s + 10 us, 100
/// TFLOP/s, 1000 GB/s, 2 us launches.
ClusterSpec testCluster() {
  std::string error;
  auto spec = ClusterSpec::fromJson(R"({
    "name": "test", "nodes": 2, "gpus_per_node": 4,
    "intra_node": {"bandwidth_GBps": 100, "latency_us": 1},
    "inter_node": {"bandwidth_GBps": 10, "latency_us": 10},
    "gpu": {"tflops": 100, "memory_bandwidth_GBps": 1000},
    "launch_latency_us": 2})",
                                    error);
  EXPECT_TRUE(spec) << error;
  return *spec;
}

TEST(CostModel, ParsesClusterFile) {
  ClusterSpec c = testCluster();
  EXPECT_EQ(c.name, "test");
  EXPECT_EQ(c.numGpus(), 8);
  EXPECT_DOUBLE_EQ(c.intraNode.bandwidth, 100e9);
  EXPECT_DOUBLE_EQ(c.interNode.latency, 10e-6);
  EXPECT_DOUBLE_EQ(c.flops, 100e12);
  EXPECT_DOUBLE_EQ(c.launchLatency, 2e-6);
}

TEST(CostModel, ShippedClusterFilesLoad) {
  for (const char *name : {"a100-ib100.json", "h100-node.json"}) {
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

  EXPECT_FALSE(ClusterSpec::fromJson(
      R"({"nodes": 0, "gpus_per_node": 4})", error));
  EXPECT_NE(error.find("'nodes' must be a positive integer"), std::string::npos)
      << error;

  EXPECT_FALSE(ClusterSpec::fromJson(
      R"({"nodes": 1, "gpus_per_node": 4,
          "intra_node": {"bandwidth_GBps": -1, "latency_us": 1}})",
      error));
  EXPECT_NE(error.find("'intra_node.bandwidth_GBps' must be positive"),
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

TEST(CostModel, HierarchicalAllReduceAcrossNodes) {
  CostModel m(testCluster());
  // 8 ranks = 2 nodes of 4. Intra: 2*3/4 * 1e9/100e9 = 15 ms + 6 us.
  // Inter: 2*1/2 * 1e9 / 10e9 = 100 ms + 2*1*10 us. Launch 2 us.
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
  EXPECT_NEAR(m.computeTime(1e12, 1e6), 10e-3 + 2e-6, 1e-12);  // compute bound
  EXPECT_NEAR(m.computeTime(1e6, 1e10), 10e-3 + 2e-6, 1e-12);  // memory bound
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
  if (s > (int64_t(1) << 20))
    EXPECT_GT(fixed, 0.05 * (m.allReduceTime(s / 2, 8) - fixed));
}

TEST(CostModel, PipelineTimeFormula) {
  CostModel m(testCluster());
  double bytes = 64e6, flops = 4e12, fbytes = 1e8;
  double net = m.allToAllTime(bytes / 4, 4);
  double comp = m.computeTime(flops / 4, fbytes / 4);
  EXPECT_NEAR(m.pipelineTime(bytes, flops, fbytes, 4, 4),
              2 * net + comp + 3 * std::max(2 * net, comp), 1e-12);
  // One chunk is the sequential chain.
  EXPECT_NEAR(m.pipelineTime(bytes, flops, fbytes, 4, 1),
              2 * m.allToAllTime(bytes, 4) + m.computeTime(flops, fbytes), 1e-12);
}

TEST(CostModel, PipelineChoiceBalancesStages) {
  CostModel m(testCluster());
  // Balanced network and compute: pipelining helps.
  PipelineChoice c = m.choosePipeline(64e6, 4e12, 1e8, 4, 1, 16, 8);
  EXPECT_GT(c.chunks, 1);
  EXPECT_LT(c.estimatedTime, m.pipelineTime(64e6, 4e12, 1e8, 4, 1));
  // Tiny compute: FFN pieces are short, so pack more experts per device.
  PipelineChoice small = m.choosePipeline(64e6, 1e9, 1e6, 4, 1, 16, 8);
  EXPECT_GT(small.expertsPerDevice, 1);
  EXPECT_EQ(small.expertsPerDevice & (small.expertsPerDevice - 1), 0);
}
} // namespace
