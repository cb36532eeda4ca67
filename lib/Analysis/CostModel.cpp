//===- CostModel.cpp - Alpha-beta cost model of a GPU cluster -------------===//
//
// Part of the Lina project.
//
//===----------------------------------------------------------------------===//

#include "lina/Analysis/CostModel.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

using namespace lina;
using nlohmann::json;

namespace {
constexpr double kGB = 1e9;
constexpr double kUs = 1e-6;

/// Reads a required positive number `key` of `obj`; `where` names the
/// enclosing object in messages.
bool readPositive(const json &obj, const char *key, const std::string &where,
                  double &out, std::string &error) {
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
  if (!(out > 0) || !std::isfinite(out)) {
    error = "cluster file: field '" + where + key + "' must be positive";
    return false;
  }
  return true;
}

bool readNonNegative(const json &obj, const char *key, const std::string &where,
                     double &out, std::string &error) {
  auto it = obj.find(key);
  if (it == obj.end()) {
    error = "cluster file: missing field '" + where + key + "'";
    return false;
  }
  if (!it->is_number() || !(it->get<double>() >= 0)) {
    error = "cluster file: field '" + where + key +
            "' must be a non-negative number";
    return false;
  }
  out = it->get<double>();
  return true;
}

bool readLink(const json &root, const char *key, LinkSpec &link,
              std::string &error) {
  auto it = root.find(key);
  if (it == root.end() || !it->is_object()) {
    error = std::string("cluster file: missing object '") + key + "'";
    return false;
  }
  std::string where = std::string(key) + ".";
  double bw = 0, lat = 0;
  if (!readPositive(*it, "bandwidth_GBps", where, bw, error) ||
      !readNonNegative(*it, "latency_us", where, lat, error))
    return false;
  link.bandwidth = bw * kGB;
  link.latency = lat * kUs;
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
} // namespace

std::optional<ClusterSpec> ClusterSpec::fromJson(const std::string &text,
                                                 std::string &error) {
  json root;
  try {
    root = json::parse(text);
  } catch (const json::exception &e) {
    error = std::string("cluster file: not valid JSON: ") + e.what();
    return std::nullopt;
  }
  if (!root.is_object()) {
    error = "cluster file: the top level must be an object";
    return std::nullopt;
  }
  if (!checkKnown(root,
                  {"name", "description", "nodes", "gpus_per_node",
                   "intra_node", "inter_node", "gpu", "launch_latency_us"},
                  "", error))
    return std::nullopt;
  ClusterSpec spec;
  if (auto it = root.find("name"); it != root.end()) {
    if (!it->is_string()) {
      error = "cluster file: field 'name' must be a string";
      return std::nullopt;
    }
    spec.name = it->get<std::string>();
  }
  for (auto [key, dst] : {std::pair<const char *, int *>{"nodes", &spec.nodes},
                          {"gpus_per_node", &spec.gpusPerNode}}) {
    auto it = root.find(key);
    if (it == root.end() || !it->is_number_integer() || it->get<int64_t>() < 1) {
      error = std::string("cluster file: field '") + key +
              "' must be a positive integer";
      return std::nullopt;
    }
    *dst = static_cast<int>(it->get<int64_t>());
  }
  if (!readLink(root, "intra_node", spec.intraNode, error) ||
      !readLink(root, "inter_node", spec.interNode, error))
    return std::nullopt;
  auto gpu = root.find("gpu");
  if (gpu == root.end() || !gpu->is_object()) {
    error = "cluster file: missing object 'gpu'";
    return std::nullopt;
  }
  if (!checkKnown(*gpu, {"tflops", "memory_bandwidth_GBps", "model"}, "gpu.",
                  error))
    return std::nullopt;
  double tflops = 0, mem = 0, launch = 0;
  if (!readPositive(*gpu, "tflops", "gpu.", tflops, error) ||
      !readPositive(*gpu, "memory_bandwidth_GBps", "gpu.", mem, error) ||
      !readNonNegative(root, "launch_latency_us", "", launch, error))
    return std::nullopt;
  spec.flops = tflops * 1e12;
  spec.memoryBandwidth = mem * kGB;
  spec.launchLatency = launch * kUs;
  return spec;
}

std::optional<ClusterSpec> ClusterSpec::fromFile(const std::string &path,
                                                 std::string &error) {
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
  ClusterSpec spec;
  spec.name = "a100-ib100 (built-in)";
  spec.nodes = 8;
  spec.gpusPerNode = 8;
  spec.intraNode = {300 * kGB, 3 * kUs};
  spec.interNode = {12.5 * kGB, 5 * kUs};
  spec.flops = 312e12;
  spec.memoryBandwidth = 2039 * kGB;
  spec.launchLatency = 5 * kUs;
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
  // Hierarchical: reduce-scatter and all-gather inside each node, ring
  // all-reduce of the node's 1/g shards across the m nodes, the node's g
  // GPUs sharing its network interface.
  int g = spec.gpusPerNode;
  int m = (n + g - 1) / g;
  const LinkSpec &in = spec.intraNode, &out = spec.interNode;
  double intra = 2.0 * (g - 1) / g * bytes / in.bandwidth + 2.0 * (g - 1) * in.latency;
  double inter = 2.0 * (m - 1) / m * bytes / out.bandwidth + 2.0 * (m - 1) * out.latency;
  return intra + inter + spec.launchLatency;
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
  return std::max(flops / spec.flops, bytes / spec.memoryBandwidth) +
         spec.launchLatency;
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

double CostModel::pipelineTime(double a2aBytes, double ffnFlops,
                               double ffnBytes, int n, int chunks) const {
  double net = allToAllTime(a2aBytes / chunks, n);
  double comp = computeTime(ffnFlops / chunks, ffnBytes / chunks);
  // Three stages (a2a in, FFN, a2a out); the two all-to-alls share the
  // network, so the steady-state period is max(2 * net, comp).
  return 2 * net + comp + (chunks - 1) * std::max(2 * net, comp);
}

PipelineChoice CostModel::choosePipeline(double a2aBytes, double ffnFlops,
                                         double ffnBytes, int n,
                                         int expertsPerDevice0, int maxChunks,
                                         int maxExpertsPerDevice) const {
  PipelineChoice best;
  best.estimatedTime = pipelineTime(a2aBytes, ffnFlops, ffnBytes, n, 1);
  best.expertsPerDevice = std::max(1, expertsPerDevice0);
  for (int k = 2; k <= std::max(1, maxChunks); k *= 2) {
    double t = pipelineTime(a2aBytes, ffnFlops, ffnBytes, n, k);
    if (t < best.estimatedTime * (1 - 1e-9)) {
      best.chunks = k;
      best.estimatedTime = t;
    }
  }
  // Packing more experts per device lengthens each FFN piece relative to
  // the all-to-all piece; stop at the first power of two where they
  // balance.
  double net = allToAllTime(a2aBytes / best.chunks, n);
  for (int p = best.expertsPerDevice; p <= maxExpertsPerDevice; p *= 2) {
    double scale = static_cast<double>(p) / best.expertsPerDevice;
    double comp = computeTime(ffnFlops * scale / best.chunks,
                              ffnBytes * scale / best.chunks);
    if (comp >= 2 * net || p * 2 > maxExpertsPerDevice) {
      best.expertsPerDevice = p;
      break;
    }
  }
  return best;
}
