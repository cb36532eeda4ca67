//===- Profile.cpp - Expert popularity and path profiles ------------------===//
//
// Part of the Lina project.
//
//===----------------------------------------------------------------------===//

#include "lina/Support/Profile.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>

using namespace lina;
using nlohmann::json;

namespace {
constexpr int kMaxPathLength = 64;

/// Index of the largest value (ties: the lowest index).
int argmax(const std::vector<double> &v) {
  return static_cast<int>(std::max_element(v.begin(), v.end()) - v.begin());
}
} // namespace

std::optional<Profile> Profile::build(const RoutingTrace &trace, int pathLength,
                                      std::string &error) {
  if (pathLength < 0 || pathLength > kMaxPathLength) {
    error = "path length must be in [0, " + std::to_string(kMaxPathLength) +
            "], got " + std::to_string(pathLength);
    return std::nullopt;
  }
  if (trace.tokens.empty() || trace.numLayers < 1 || trace.numExperts < 1 ||
      trace.topK < 1) {
    error = "the routing trace is empty";
    return std::nullopt;
  }
  const int L = trace.numLayers, E = trace.numExperts;
  Profile p;
  p.numLayers = L;
  p.numExperts = E;
  p.topK = trace.topK;
  p.pathLength = pathLength;
  p.numTokens = static_cast<int64_t>(trace.tokens.size());
  p.popularity.assign(L, std::vector<double>(E, 0.0));
  p.transitions.resize(L);
  // Counts first (assignments per expert, top-1 choices per expert).
  std::vector<std::map<std::vector<int>, std::vector<double>>> top1Counts(L);
  for (const TokenRoute &route : trace.tokens) {
    for (int l = 0; l < L; ++l) {
      for (int e : route.experts[l]) {
        if (e < 0 || e >= E) {
          error = "expert id " + std::to_string(e) + " of request " +
                  std::to_string(route.request) + " token " +
                  std::to_string(route.token) + " is out of range [0, " +
                  std::to_string(E) + ")";
          return std::nullopt;
        }
        p.popularity[l][e] += 1;
      }
      int maxLen = std::min(pathLength, l);
      for (int m = 1; m <= maxLen; ++m) {
        std::vector<int> path(m);
        for (int j = 0; j < m; ++j)
          path[j] = route.top1(l - m + j);
        PathStats &stats = p.transitions[l][path];
        if (stats.shares.empty())
          stats.shares.assign(E, 0.0);
        stats.count += 1;
        for (int e : route.experts[l])
          stats.shares[e] += 1;
        std::vector<double> &t1 = top1Counts[l][path];
        if (t1.empty())
          t1.assign(E, 0.0);
        t1[route.top1(l)] += 1;
      }
    }
  }
  double assignments = static_cast<double>(p.numTokens) * p.topK;
  for (int l = 0; l < L; ++l) {
    for (double &x : p.popularity[l])
      x /= assignments;
    for (auto &[path, stats] : p.transitions[l]) {
      double total = static_cast<double>(stats.count) * p.topK;
      for (double &x : stats.shares)
        x /= total;
      stats.top1 = argmax(top1Counts[l][path]);
    }
  }
  return p;
}

const PathStats *Profile::lookup(int layer, const int *history,
                                 int *usedLength) const {
  if (usedLength)
    *usedLength = 0;
  if (layer <= 0 || layer >= numLayers)
    return nullptr;
  const auto &table = transitions[layer];
  for (int m = std::min(pathLength, layer); m >= 1; --m) {
    std::vector<int> path(history + layer - m, history + layer);
    auto it = table.find(path);
    if (it != table.end() && it->second.count > 0) {
      if (usedLength)
        *usedLength = m;
      return &it->second;
    }
  }
  return nullptr;
}

void Profile::predict(int layer, const int *history, double *dist) const {
  std::copy(popularity[layer].begin(), popularity[layer].end(), dist);
  if (layer <= 0 || layer >= numLayers)
    return;
  const auto &table = transitions[layer];
  std::vector<int> path;
  for (int m = 1; m <= std::min(pathLength, layer); ++m) {
    path.assign(history + layer - m, history + layer);
    auto it = table.find(path);
    if (it == table.end() || it->second.count <= 0)
      break; // a longer suffix cannot have been seen either
    double c = static_cast<double>(it->second.count);
    double w = c / (c + smoothing);
    for (int e = 0; e < numExperts; ++e)
      dist[e] = w * it->second.shares[e] + (1 - w) * dist[e];
  }
}

void Profile::addExpectedLoad(int layer, const int *history,
                              double *loads) const {
  std::vector<double> dist(numExperts);
  predict(layer, history, dist.data());
  for (int e = 0; e < numExperts; ++e)
    loads[e] += topK * dist[e];
}

int Profile::predictTop1(int layer, const int *history) const {
  if (layer > 0 && layer < numLayers) {
    const auto &table = transitions[layer];
    for (int m = std::min(pathLength, layer); m >= 1; --m) {
      std::vector<int> path(history + layer - m, history + layer);
      auto it = table.find(path);
      if (it != table.end() && it->second.count > 0 &&
          static_cast<double>(it->second.count) >= smoothing)
        return it->second.top1;
    }
  }
  return argmax(popularity[layer]);
}

//===----------------------------------------------------------------------===//
// JSON
//===----------------------------------------------------------------------===//

std::string Profile::toJson() const {
  // One line per popularity row and per transition: readable and diffable.
  using ojson = nlohmann::ordered_json;
  std::ostringstream out;
  ojson head = {
      {"format", "lina-profile"}, {"version", 1},  {"layers", numLayers},
      {"experts", numExperts},    {"top_k", topK}, {"path_length", pathLength},
      {"tokens", numTokens}};
  if (smoothing > 0)
    head["smoothing"] = smoothing;
  std::string h = head.dump();
  out << h.substr(0, h.size() - 1) << ",\n \"popularity\": [";
  for (int l = 0; l < numLayers; ++l)
    out << (l ? ",\n  " : "\n  ") << ojson(popularity[l]).dump();
  out << "\n ],\n \"transitions\": [";
  bool first = true;
  for (int l = 0; l < numLayers; ++l) {
    for (const auto &[path, stats] : transitions[l]) {
      ojson experts = ojson::array(), shares = ojson::array();
      for (int e = 0; e < numExperts; ++e) {
        if (stats.shares[e] > 0) {
          experts.push_back(e);
          shares.push_back(stats.shares[e]);
        }
      }
      ojson t = {{"layer", l},           {"path", path},
                 {"count", stats.count}, {"top1", stats.top1},
                 {"experts", experts},   {"shares", shares}};
      out << (first ? "\n  " : ",\n  ") << t.dump();
      first = false;
    }
  }
  out << "\n ]\n}\n";
  return out.str();
}

bool Profile::writeFile(const std::string &path, std::string &error) const {
  std::ofstream out(path);
  if (!out) {
    error = "cannot write '" + path + "'";
    return false;
  }
  out << toJson();
  out.flush();
  if (!out) {
    error = path + ": write error";
    return false;
  }
  return true;
}

namespace {
/// Field readers that report "ORIGIN: field 'NAME' ..." on failure.
struct Reader {
  const std::string &origin;
  std::string &error;

  bool fail(const std::string &what) {
    error = origin + ": " + what;
    return false;
  }
  bool integer(const json &obj, const char *key, const std::string &where,
               int64_t lo, int64_t hi, int64_t &out) {
    auto it = obj.find(key);
    if (it == obj.end())
      return fail("missing field '" + where + key + "'");
    if (!it->is_number_integer() || it->get<int64_t>() < lo ||
        it->get<int64_t>() > hi)
      return fail("field '" + where + key + "' must be an integer in [" +
                  std::to_string(lo) + ", " + std::to_string(hi) + "], got " +
                  it->dump());
    out = it->get<int64_t>();
    return true;
  }
  bool shareList(const json &v, const std::string &name, size_t size,
                 std::vector<double> &out) {
    if (!v.is_array() || (size && v.size() != size))
      return fail("field '" + name + "' must be an array of " +
                  (size ? std::to_string(size) + " " : std::string()) +
                  "shares");
    for (const json &x : v) {
      if (!x.is_number() || !std::isfinite(x.get<double>()) ||
          x.get<double>() < 0 || x.get<double>() > 1)
        return fail("field '" + name + "' holds " + x.dump() +
                    ", not a share in [0, 1]");
      out.push_back(x.get<double>());
    }
    double sum = 0;
    for (double x : out)
      sum += x;
    if (std::fabs(sum - 1) > 1e-6)
      return fail("the shares of '" + name + "' sum to " + std::to_string(sum) +
                  ", not 1");
    return true;
  }
};
} // namespace

namespace {
std::optional<Profile> parseProfile(const std::string &text,
                                    const std::string &origin,
                                    std::string &error) {
  json root = json::parse(text, nullptr, /*allow_exceptions=*/false);
  Reader rd{origin, error};
  if (root.is_discarded()) {
    rd.fail("not valid JSON (expected a profile written by lina-profile)");
    return std::nullopt;
  }
  auto format = root.is_object() ? root.find("format") : root.end();
  if (!root.is_object() || format == root.end() || !format->is_string() ||
      *format != "lina-profile") {
    rd.fail("not a profile (expected \"format\": \"lina-profile\")");
    return std::nullopt;
  }
  Profile p;
  int64_t version = 0, layers = 0, experts = 0, topK = 0, pathLength = 0,
          tokens = 0;
  if (!rd.integer(root, "version", "", 1, 1000, version))
    return std::nullopt;
  if (version != 1) {
    rd.fail("profile version " + std::to_string(version) +
            " is not supported (this build reads version 1)");
    return std::nullopt;
  }
  if (!rd.integer(root, "layers", "", 1, 1 << 20, layers) ||
      !rd.integer(root, "experts", "", 1, 1 << 24, experts) ||
      !rd.integer(root, "top_k", "", 1, experts, topK) ||
      !rd.integer(root, "path_length", "", 0, kMaxPathLength, pathLength) ||
      !rd.integer(root, "tokens", "", 1, INT64_MAX, tokens))
    return std::nullopt;
  p.numLayers = static_cast<int>(layers);
  p.numExperts = static_cast<int>(experts);
  p.topK = static_cast<int>(topK);
  p.pathLength = static_cast<int>(pathLength);
  p.numTokens = tokens;
  if (auto sm = root.find("smoothing"); sm != root.end()) {
    if (!sm->is_number() || !std::isfinite(sm->get<double>()) ||
        sm->get<double>() < 0 || sm->get<double>() > 1e9) {
      rd.fail("field 'smoothing' must be a finite number in [0, 1e9], got " +
              sm->dump());
      return std::nullopt;
    }
    p.smoothing = sm->get<double>();
  }

  auto pop = root.find("popularity");
  if (pop == root.end() || !pop->is_array() ||
      pop->size() != static_cast<size_t>(layers)) {
    rd.fail("field 'popularity' must be an array with one entry per layer (" +
            std::to_string(layers) + ")");
    return std::nullopt;
  }
  for (size_t l = 0; l < pop->size(); ++l) {
    std::vector<double> shares;
    if (!rd.shareList((*pop)[l], "popularity[" + std::to_string(l) + "]",
                      static_cast<size_t>(experts), shares))
      return std::nullopt;
    p.popularity.push_back(std::move(shares));
  }

  p.transitions.resize(p.numLayers);
  auto trans = root.find("transitions");
  if (trans == root.end() || !trans->is_array()) {
    rd.fail("field 'transitions' must be an array");
    return std::nullopt;
  }
  for (size_t i = 0; i < trans->size(); ++i) {
    const json &t = (*trans)[i];
    std::string where = "transitions[" + std::to_string(i) + "].";
    if (!t.is_object()) {
      rd.fail("'" + where.substr(0, where.size() - 1) + "' must be an object");
      return std::nullopt;
    }
    int64_t layer = 0, count = 0, top1 = 0;
    if (!rd.integer(t, "layer", where, 1, layers - 1, layer) ||
        !rd.integer(t, "count", where, 1, INT64_MAX, count) ||
        !rd.integer(t, "top1", where, 0, experts - 1, top1))
      return std::nullopt;
    auto path = t.find("path");
    int64_t maxLen = std::min<int64_t>(pathLength, layer);
    if (path == t.end() || !path->is_array() || path->empty() ||
        static_cast<int64_t>(path->size()) > maxLen) {
      rd.fail("field '" + where + "path' must be an array of 1 to " +
              std::to_string(maxLen) + " expert ids");
      return std::nullopt;
    }
    std::vector<int> key;
    for (const json &e : *path) {
      if (!e.is_number_integer() || e.get<int64_t>() < 0 ||
          e.get<int64_t>() >= experts) {
        rd.fail("field '" + where + "path' holds " + e.dump() +
                ", not an expert id in [0, " + std::to_string(experts) + ")");
        return std::nullopt;
      }
      key.push_back(static_cast<int>(e.get<int64_t>()));
    }
    auto ids = t.find("experts");
    auto shares = t.find("shares");
    if (ids == t.end() || !ids->is_array() || shares == t.end() ||
        !shares->is_array() || ids->size() != shares->size() || ids->empty()) {
      rd.fail("fields '" + where + "experts' and '" + where +
              "shares' must be non-empty arrays of equal length");
      return std::nullopt;
    }
    std::vector<double> sparse;
    if (!rd.shareList(*shares, where + "shares", 0, sparse))
      return std::nullopt;
    PathStats stats;
    stats.count = count;
    stats.top1 = static_cast<int>(top1);
    stats.shares.assign(p.numExperts, 0.0);
    for (size_t j = 0; j < ids->size(); ++j) {
      const json &e = (*ids)[j];
      if (!e.is_number_integer() || e.get<int64_t>() < 0 ||
          e.get<int64_t>() >= experts) {
        rd.fail("field '" + where + "experts' holds " + e.dump() +
                ", not an expert id in [0, " + std::to_string(experts) + ")");
        return std::nullopt;
      }
      stats.shares[e.get<int64_t>()] += sparse[j];
    }
    if (!p.transitions[layer].emplace(key, std::move(stats)).second) {
      rd.fail("'" + where.substr(0, where.size() - 1) +
              "' repeats the path of an earlier entry for layer " +
              std::to_string(layer));
      return std::nullopt;
    }
  }
  return p;
}
} // namespace

namespace {
/// The 1-based line where element `index` of the top-level array field
/// `key` starts in `text`, or 0 if it cannot be found. A small scanner
/// that skips strings and tracks nesting depth.
int64_t lineOfElement(const std::string &text, const std::string &key,
                      int64_t index) {
  int depth = 0;
  int64_t line = 1, element = -1;
  bool inString = false, inField = false, pendingStart = false;
  std::string lastString;
  size_t stringStart = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '\n')
      ++line;
    if (inString) {
      if (c == '\\')
        ++i;
      else if (c == '"') {
        inString = false;
        lastString = text.substr(stringStart, i - stringStart);
      }
      continue;
    }
    if (pendingStart && !std::isspace(static_cast<unsigned char>(c))) {
      pendingStart = false;
      if (c != ']' && ++element == index)
        return line;
    }
    switch (c) {
    case '"':
      inString = true;
      stringStart = i + 1;
      break;
    case '{':
    case '[':
      ++depth;
      if (depth == 2 && c == '[' && lastString == key && !inField) {
        inField = true;
        pendingStart = true;
      }
      break;
    case '}':
    case ']':
      if (depth == 2 && inField)
        return 0;
      --depth;
      break;
    case ',':
      if (inField && depth == 2)
        pendingStart = true;
      break;
    default:
      break;
    }
  }
  return 0;
}

/// "ORIGIN: ... 'FIELD[I]...' ..." -> "ORIGIN:LINE: ..." for the array
/// fields whose elements sit on lines of their own in written profiles.
void addLine(const std::string &text, const std::string &origin,
             std::string &error) {
  for (const char *key : {"transitions", "popularity"}) {
    std::string marker = std::string(key) + "[";
    size_t at = error.find(marker);
    if (at == std::string::npos ||
        error.compare(0, origin.size() + 2, origin + ": ") != 0)
      continue;
    int64_t index =
        std::strtoll(error.c_str() + at + marker.size(), nullptr, 10);
    if (int64_t line = lineOfElement(text, key, index))
      error = origin + ":" + std::to_string(line) + error.substr(origin.size());
    return;
  }
}
} // namespace

std::optional<Profile> Profile::fromJson(const std::string &text,
                                         const std::string &origin,
                                         std::string &error) {
  try {
    std::optional<Profile> p = parseProfile(text, origin, error);
    if (!p)
      addLine(text, origin, error);
    return p;
  } catch (const std::exception &e) {
    error = origin + ": malformed profile: " + e.what();
    return std::nullopt;
  }
}

std::optional<Profile> Profile::fromFile(const std::string &path,
                                         std::string &error) {
  std::ifstream in(path);
  if (!in) {
    error = "cannot open profile '" + path + "'";
    return std::nullopt;
  }
  std::stringstream text;
  text << in.rdbuf();
  return fromJson(text.str(), path, error);
}
