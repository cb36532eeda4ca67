//===- CostModel.cpp - Alpha-beta cost model of a GPU cluster -------------===//
//
// Part of the Lina project.
//
//===----------------------------------------------------------------------===//

#include "lina/Support/CostModel.h"
#include "lina/Support/CheckedMath.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

using namespace lina;
using nlohmann::json;

namespace {
/// The cluster file gives every bandwidth in Gb/s (10^9 bits per second).
constexpr double kGbpsToBytes = 1e9 / 8;
constexpr double kUs = 1e-6;

/// Reads the required number `key` of `obj` into `out`; `where` is the
/// prefix naming the enclosing object in messages ("inter_node.").
bool readNumber(const json &obj, const char *key, const std::string &where,
                bool allowZero, double &out, std::string &error) {
  auto it = obj.find(key);
  if (it == obj.end()) {
    error = "cluster file: missing field '" + where + key + "'";
    return false;
  }
  if (!it->is_number()) {
    error = "cluster file: field '" + where + key + "' must be a number";
    return false;
  }
  out = it->get<double>();
  if (!std::isfinite(out) || out < 0 || (!allowZero && out == 0)) {
    error = "cluster file: field '" + where + key + "' must be " +
            (allowZero ? "non-negative" : "positive") + ", got " + it->dump();
    return false;
  }
  return true;
}

/// Reads the optional number `key` of `obj` into `out` (left as is when
/// absent); it must lie in (0, max].
bool readOptionalFraction(const json &obj, const char *key,
                          const std::string &where, double max, double &out,
                          std::string &error) {
  auto it = obj.find(key);
  if (it == obj.end())
    return true;
  if (!it->is_number()) {
    error = "cluster file: field '" + where + key + "' must be a number";
    return false;
  }
  double v = it->get<double>();
  if (!std::isfinite(v) || v <= 0 || v > max) {
    std::ostringstream os;
    os << "cluster file: field '" << where << key << "' must be in (0, " << max
       << "], got " << it->dump();
    error = os.str();
    return false;
  }
  out = v;
  return true;
}

/// Reads the optional string `key` of `root`, one of `choices`, into `out`
/// (left as is when absent).
template <typename E>
bool readChoice(const json &root, const char *key,
                std::initializer_list<std::pair<const char *, E>> choices,
                E &out, std::string &error) {
  auto it = root.find(key);
  if (it == root.end())
    return true;
  std::string names;
  for (const auto &[name, value] : choices) {
    if (it->is_string() && *it == name) {
      out = value;
      return true;
    }
    names += std::string(names.empty() ? "" : " or ") + "\"" + name + "\"";
  }
  error = std::string("cluster file: field '") + key + "' must be " + names +
          ", got " + it->dump();
  return false;
}

/// Reads the required integer `key` (1 .. 1<<20) of the top-level object.
bool readCount(const json &root, const char *key, int &out,
               std::string &error) {
  auto it = root.find(key);
  if (it == root.end()) {
    error = std::string("cluster file: missing field '") + key + "'";
    return false;
  }
  if (!it->is_number_integer() || it->get<int64_t>() < 1 ||
      it->get<int64_t>() > (int64_t(1) << 20)) {
    error = std::string("cluster file: field '") + key +
            "' must be a positive integer, got " + it->dump();
    return false;
  }
  out = static_cast<int>(it->get<int64_t>());
  return true;
}

bool checkKnown(const json &obj, std::initializer_list<const char *> known,
                const std::string &where, std::string &error) {
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    if (std::none_of(known.begin(), known.end(),
                     [&](const char *k) { return it.key() == k; })) {
      error = "cluster file: unknown field '" + where + it.key() + "'";
      return false;
    }
  }
  return true;
}

/// Finds the required object `key` of `root`.
const json *readObject(const json &root, const char *key, std::string &error) {
  auto it = root.find(key);
  if (it == root.end()) {
    error = std::string("cluster file: missing object '") + key + "'";
    return nullptr;
  }
  if (!it->is_object()) {
    error = std::string("cluster file: field '") + key + "' must be an object";
    return nullptr;
  }
  return &*it;
}

bool readLink(const json &root, const char *key, LinkSpec &link,
              std::string &error) {
  const json *obj = readObject(root, key, error);
  std::string where = std::string(key) + ".";
  double gbps = 0, us = 0, efficiency = 1;
  if (!obj ||
      !checkKnown(*obj, {"bandwidth_gbps", "latency_us", "efficiency"}, where,
                  error) ||
      !readNumber(*obj, "bandwidth_gbps", where, false, gbps, error) ||
      !readNumber(*obj, "latency_us", where, true, us, error) ||
      !readOptionalFraction(*obj, "efficiency", where, 1.0, efficiency, error))
    return false;
  // The rate collectives reach: the line rate times the protocol efficiency.
  link.bandwidth = gbps * kGbpsToBytes * efficiency;
  link.latency = us * kUs;
  return true;
}

/// Reads the cluster description `root` (see fromJson).
std::optional<ClusterSpec> readCluster(const json &root, std::string &error) {
  if (!root.is_object()) {
    error = "cluster file: the top level must be an object";
    return std::nullopt;
  }
  if (!checkKnown(root,
                  {"name", "description", "nodes", "gpus_per_node",
                   "intra_node", "inter_node", "gpu", "launch_latency_us",
                   "all_reduce_algorithm", "sharing"},
                  "", error))
    return std::nullopt;
  ClusterSpec spec;
  for (const char *key : {"name", "description"}) {
    auto it = root.find(key);
    if (it != root.end() && !it->is_string()) {
      error = std::string("cluster file: field '") + key + "' must be a string";
      return std::nullopt;
    }
  }
  if (auto it = root.find("name"); it != root.end())
    spec.name = it->get<std::string>();
  if (!readCount(root, "nodes", spec.nodes, error) ||
      !readCount(root, "gpus_per_node", spec.gpusPerNode, error) ||
      !readLink(root, "intra_node", spec.intraNode, error) ||
      !readLink(root, "inter_node", spec.interNode, error))
    return std::nullopt;
  if (!checkedMul(spec.nodes, spec.gpusPerNode) ||
      spec.nodes * int64_t(spec.gpusPerNode) > Limits::kMaxRanks) {
    error = "cluster file: 'nodes' x 'gpus_per_node' = " +
            std::to_string(int64_t(spec.nodes) * spec.gpusPerNode) +
            " GPUs exceeds the limit of " + std::to_string(Limits::kMaxRanks);
    return std::nullopt;
  }
  if (!readChoice(root, "all_reduce_algorithm",
                  {{"ring", AllReduceAlgorithm::Ring},
                   {"tree", AllReduceAlgorithm::Tree}},
                  spec.allReduceAlgorithm, error) ||
      !readChoice(root, "sharing",
                  {{"pair", LinkSharing::Pair},
                   {"collective", LinkSharing::Collective}},
                  spec.sharing, error))
    return std::nullopt;
  const json *gpu = readObject(root, "gpu", error);
  if (!gpu ||
      !checkKnown(*gpu,
                  {"model", "flops", "memory_bandwidth_gbps", "gemm_efficiency",
                   "memory_efficiency", "kernel_launch_us"},
                  "gpu.", error))
    return std::nullopt;
  if (auto it = gpu->find("model"); it != gpu->end() && !it->is_string()) {
    error = "cluster file: field 'gpu.model' must be a string";
    return std::nullopt;
  }
  double memGbps = 0, launchUs = 0;
  if (!readNumber(*gpu, "flops", "gpu.", false, spec.flops, error) ||
      !readNumber(*gpu, "memory_bandwidth_gbps", "gpu.", false, memGbps,
                  error) ||
      !readNumber(root, "launch_latency_us", "", true, launchUs, error))
    return std::nullopt;
  spec.memoryBandwidth = memGbps * kGbpsToBytes;
  spec.launchLatency = launchUs * kUs;
  // Without a per-kernel launch cost, a kernel costs a collective's launch.
  double kernelUs = launchUs;
  if (gpu->contains("kernel_launch_us") &&
      !readNumber(*gpu, "kernel_launch_us", "gpu.", true, kernelUs, error))
    return std::nullopt;
  spec.kernelLaunch = kernelUs * kUs;
  if (!readOptionalFraction(*gpu, "gemm_efficiency", "gpu.", 1.0,
                            spec.gemmEfficiency, error) ||
      !readOptionalFraction(*gpu, "memory_efficiency", "gpu.", 1.0,
                            spec.memoryEfficiency, error))
    return std::nullopt;
  return spec;
}
} // namespace

std::optional<ClusterSpec> ClusterSpec::fromJson(const std::string &text,
                                                 std::string &error) {
  // nlohmann-json reports errors with exceptions; none leaves this function
  // (the compiler that calls it is built without exceptions).
  try {
    json root;
    try {
      root = json::parse(text);
    } catch (const json::exception &e) {
      error = std::string("cluster file: not valid JSON: ") + e.what();
      return std::nullopt;
    }
    return readCluster(root, error);
  } catch (const std::exception &e) {
    error = std::string("cluster file: ") + e.what();
    return std::nullopt;
  }
}

std::optional<ClusterSpec> ClusterSpec::fromFile(const std::string &path,
                                                 std::string &error) {
  // std::ifstream and the error_code overload of is_directory do not throw.
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    error = "cluster file '" + path + "' is a directory";
    return std::nullopt;
  }
  std::ifstream in(path);
  if (!in) {
    error = "cannot open cluster file '" + path + "'";
    return std::nullopt;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  auto spec = fromJson(ss.str(), error);
  if (!spec)
    error = path + ": " + error;
  return spec;
}

ClusterSpec ClusterSpec::a100Ib100() {
  // Keep in sync with examples/clusters/a100-ib100.json (a unit test
  // checks that they agree).
  ClusterSpec spec;
  spec.name = "a100-ib100";
  spec.nodes = 4;
  spec.gpusPerNode = 8;
  spec.intraNode = {2400 * kGbpsToBytes * 0.7, 3 * kUs};
  spec.interNode = {100 * kGbpsToBytes * 0.96, 5 * kUs};
  spec.flops = 312e12;
  spec.memoryBandwidth = 16312 * kGbpsToBytes;
  spec.launchLatency = 5 * kUs;
  spec.gemmEfficiency = 0.75;
  spec.memoryEfficiency = 0.85;
  spec.kernelLaunch = 5 * kUs;
  return spec;
}

bool CostModel::spansNodes(int groupSize) const {
  return groupSize > spec.gpusPerNode;
}

double CostModel::allReduceTime(double bytes, int n) const {
  if (n <= 1)
    return 0;
  if (!spansNodes(n)) {
    const LinkSpec &l = spec.intraNode;
    return 2.0 * (n - 1) / n * bytes / l.bandwidth + 2.0 * (n - 1) * l.latency +
           spec.launchLatency;
  }
  int g = spec.gpusPerNode;
  int m = (n + g - 1) / g;
  const LinkSpec &in = spec.intraNode, &out = spec.interNode;
  double latency = 2.0 * (g - 1) * in.latency + spec.launchLatency;
  if (spec.allReduceAlgorithm == AllReduceAlgorithm::Tree) {
    // Reduce inside each node, the node's g shards of B/g over a double
    // binary tree of the m nodes (the g GPUs sharing the interface, so
    // 2(m-1)/m B per node), broadcast inside each node.
    return 2.0 * (g - 1) / g * bytes / in.bandwidth +
           2.0 * (m - 1) / m * bytes / out.bandwidth + latency +
           2.0 * std::ceil(std::log2(static_cast<double>(m))) * out.latency;
  }
  // NCCL's ring: every hop carries 2(n-1)/n B, the node crossings through
  // the node's interface; the slowest hop sets the pace.
  double ring = 2.0 * (n - 1) / n * bytes;
  return std::max(ring / in.bandwidth, ring / out.bandwidth) + latency +
         2.0 * (m - 1) * out.latency;
}

double CostModel::allToAllTime(double bytes, int n) const {
  if (n <= 1)
    return 0;
  if (!spansNodes(n)) {
    const LinkSpec &l = spec.intraNode;
    return (n - 1.0) / n * bytes / l.bandwidth + (n - 1) * l.latency +
           spec.launchLatency;
  }
  // Each rank sends (g-1)/n of its bytes over its own intra-node link and
  // (n-g)/n over the node's interface, which its g GPUs share; the two
  // proceed in parallel.
  int g = spec.gpusPerNode;
  double intra = (g - 1.0) / n * bytes / spec.intraNode.bandwidth;
  double inter = (n - g) * 1.0 / n * bytes * g / spec.interNode.bandwidth;
  return std::max(intra, inter) + (n - 1) * spec.interNode.latency +
         spec.launchLatency;
}

double CostModel::computeTime(double flops, double bytes) const {
  return computeTime(flops, bytes, KernelClass::Gemm, 1);
}

double CostModel::computeTime(double flops, double bytes, KernelClass kind,
                              int kernels) const {
  double memory = bytes / (spec.memoryBandwidth * spec.memoryEfficiency);
  double math = kind == KernelClass::Gemm
                    ? flops / (spec.flops * spec.gemmEfficiency)
                    : 0.0;
  return std::max(math, memory) + std::max(0, kernels) * spec.kernelLaunch;
}

int64_t CostModel::choosePartitionBytes(int n, double overheadFraction) const {
  constexpr int64_t kMin = int64_t(1) << 20, kMax = int64_t(64) << 20;
  double fixed = allReduceTime(0, n);
  for (int64_t s = kMin; s < kMax; s *= 2) {
    double transfer = allReduceTime(static_cast<double>(s), n) - fixed;
    if (fixed <= overheadFraction * transfer)
      return s;
  }
  return kMax;
}

double CostModel::pipelineTime(const ExpertWork &work, int n,
                               int chunks) const {
  chunks = std::max(1, chunks);
  double net = allToAllTime(work.a2aBytes / chunks, n);
  double comp = computeTime(work.flops / chunks,
                            work.tokenBytes / chunks + work.weightBytes);
  // Three stages (a2a in, FFN, a2a out); the two all-to-alls share the
  // network, so the steady-state period is max(2 * net, comp).
  return 2 * net + comp + (chunks - 1) * std::max(2 * net, comp);
}

PipelineChoice CostModel::choosePipeline(const ExpertWork &work, int n,
                                         int expertsPerDevice, int maxChunks,
                                         int maxExpertsPerDevice) const {
  PipelineChoice best;
  best.estimatedTime = pipelineTime(work, n, 1);
  best.expertsPerDevice = std::max(1, expertsPerDevice);
  for (int k = 2; k <= maxChunks; k *= 2) {
    double t = pipelineTime(work, n, k);
    if (t < best.estimatedTime * (1 - 1e-9)) {
      best.chunks = k;
      best.estimatedTime = t;
    }
  }
  // Packing p experts per device instead of p0 multiplies the FFN work of
  // a chunk by p / p0 while each rank still sends its own tokens; stop at
  // the first power of two where a chunk's FFN covers its two all-to-all
  // pieces, or at the limit.
  double net = allToAllTime(work.a2aBytes / best.chunks, n);
  int p0 = best.expertsPerDevice;
  for (int p = p0; p <= maxExpertsPerDevice; p *= 2) {
    double scale = static_cast<double>(p) / p0;
    double comp =
        computeTime(work.flops * scale / best.chunks,
                    (work.tokenBytes / best.chunks + work.weightBytes) * scale);
    best.expertsPerDevice = p;
    if (comp >= 2 * net)
      break;
  }
  return best;
}
