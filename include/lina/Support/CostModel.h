//===- CostModel.h - Alpha-beta cost model of a GPU cluster -----*- C++ -*-===//
//
// Part of the Lina project.
//
// A cluster description (nodes, GPUs per node, link bandwidths and
// latencies, GPU FLOP/s and memory bandwidth) and the analytical times the
// compiler uses to choose partition sizes and pipeline depths, and the
// simulator uses as the cost of one collective alone on the network. The
// formulas are documented in docs/COST_MODEL.md.
//
// Plain C++17 with no LLVM dependency: the runtime links it too. The public
// API never throws; errors come back as values.
//
//===----------------------------------------------------------------------===//

#ifndef LINA_SUPPORT_COSTMODEL_H
#define LINA_SUPPORT_COSTMODEL_H

#include <cstdint>
#include <optional>
#include <string>

namespace lina {

/// One class of link: bandwidth in bytes per second, latency in seconds.
struct LinkSpec {
  double bandwidth = 0; ///< bytes/s collectives reach (line rate x efficiency)
  double latency = 0;   ///< s
};

/// How a multi-node all-reduce crosses the network: NCCL's ring, or its
/// double binary tree (same bytes per interface, logarithmic latency).
enum class AllReduceAlgorithm { Ring, Tree };

/// The unit of fair sharing of a link in the simulator: every sub-flow (a
/// pair of GPUs in an all_to_all, a GPU's shard in an all-reduce ring), or
/// every collective (all of one collective's traffic on a link counts as
/// one user, as NCCL streams of separate communicators roughly behave).
enum class LinkSharing { Pair, Collective };

/// What bounds a compute kernel: GEMM-heavy kernels reach `gemmEfficiency`
/// of the peak FLOP/s, every kernel `memoryEfficiency` of the peak memory
/// bandwidth.
enum class KernelClass { Gemm, Memory };

/// A homogeneous cluster: `nodes` nodes of `gpusPerNode` GPUs. Ranks are
/// numbered node-major (ranks 0..g-1 on node 0, ...). `intraNode` is the
/// per-GPU link inside a node (NVLink/PCIe); `interNode` is the per-node
/// network interface, shared by the node's GPUs.
struct ClusterSpec {
  std::string name;
  int nodes = 1;
  int gpusPerNode = 1;
  LinkSpec intraNode;
  LinkSpec interNode;
  double flops = 0;           ///< FLOP/s of one GPU
  double memoryBandwidth = 0; ///< bytes/s of one GPU
  double launchLatency = 0;   ///< s per collective launch
  /// Fractions of the peaks that real kernels reach, in (0, 1].
  double gemmEfficiency = 1;
  double memoryEfficiency = 1;
  double kernelLaunch = 0; ///< s per compute kernel launch
  AllReduceAlgorithm allReduceAlgorithm = AllReduceAlgorithm::Ring;
  LinkSharing sharing = LinkSharing::Pair;

  int numGpus() const { return nodes * gpusPerNode; }

  /// Parses the JSON cluster file format of docs/COST_MODEL.md. On error
  /// returns nullopt and sets `error` to a message naming the field.
  static std::optional<ClusterSpec> fromJson(const std::string &text,
                                             std::string &error);
  static std::optional<ClusterSpec> fromFile(const std::string &path,
                                             std::string &error);
  /// The built-in default, equal to examples/clusters/a100-ib100.json: the
  /// published testbed's shape, 4 nodes of 8 A100s on NVLink, one 100 Gb/s
  /// InfiniBand interface per node.
  static ClusterSpec a100Ib100();
};

/// Work of one expert chain (all-to-all -> expert FFN -> all-to-all) on
/// one device, as the pipeline choice needs it.
struct ExpertWork {
  double a2aBytes = 0;    ///< bytes each rank sends in one all-to-all
  double flops = 0;       ///< FFN FLOPs (proportional to the tokens)
  double tokenBytes = 0;  ///< FFN memory traffic proportional to the tokens
  double weightBytes = 0; ///< FFN memory traffic every chunk repeats
};

/// Choice of the expert pipeline: micro-chunks and experts per device.
struct PipelineChoice {
  int chunks = 1;
  int expertsPerDevice = 1;
  double estimatedTime = 0; ///< s, pipelined all-to-all + FFN + all-to-all
};

class CostModel {
public:
  explicit CostModel(ClusterSpec spec) : spec(std::move(spec)) {}
  const ClusterSpec &cluster() const { return spec; }

  /// True if a group of `groupSize` consecutive ranks spans several nodes.
  bool spansNodes(int groupSize) const;

  /// All-reduce of `bytes` per rank over `groupSize` ranks without
  /// contention: NCCL's ring, or, across nodes with the tree algorithm,
  /// reduce in the node / tree between nodes / broadcast in the node.
  double allReduceTime(double bytes, int groupSize) const;
  /// Pairwise all-to-all in which each rank sends `bytes` in total.
  double allToAllTime(double bytes, int groupSize) const;
  /// Roofline time of one GEMM-heavy kernel: max(flops / (FLOP/s x GEMM
  /// efficiency), bytes / (bandwidth x memory efficiency)) plus one kernel
  /// launch.
  double computeTime(double flops, double bytes) const;
  /// Roofline time of an op of `kernels` kernels of class `kind` moving
  /// `bytes` and computing `flops` in all (memory-bound kernels ignore
  /// their FLOPs).
  double computeTime(double flops, double bytes, KernelClass kind,
                     int kernels) const;

  /// Partition size for all-reduce in `groupSize` ranks: the smallest power
  /// of two (>= 1 MiB) whose fixed per-partition cost (latency terms) is at
  /// most `overheadFraction` of its transfer time, capped at 64 MiB.
  int64_t choosePartitionBytes(int groupSize,
                               double overheadFraction = 0.05) const;

  /// Time of the chain of `work` in `chunks` micro-chunks, pipelined:
  /// `2 net + comp + (chunks - 1) max(2 net, comp)`, with `net` the
  /// all-to-all time and `comp` the FFN time of one chunk (the weights are
  /// read by every chunk).
  double pipelineTime(const ExpertWork &work, int groupSize, int chunks) const;

  /// Chooses the micro-chunks K (powers of two up to `maxChunks`) that
  /// minimise pipelineTime, then the experts per device (powers of two from
  /// `expertsPerDevice`, at most `maxExpertsPerDevice`): the first at which
  /// a chunk's FFN time reaches the two all-to-all pieces it overlaps, FFN
  /// work growing in proportion to the experts per device.
  PipelineChoice choosePipeline(const ExpertWork &work, int groupSize,
                                int expertsPerDevice, int maxChunks,
                                int maxExpertsPerDevice) const;

private:
  ClusterSpec spec;
};

} // namespace lina

#endif // LINA_SUPPORT_COSTMODEL_H
