//===- Placement.h - Expert placement on devices ----------------*- C++ -*-===//
//
// Part of the Lina project.
//
// Where each expert of one MoE layer lives: a list of replicas (device,
// share of the expert's tokens) per expert, N devices with C expert slots
// each. Two placements:
//  - static: expert parallelism, expert e on device e / ceil(E/N), share 1;
//  - lina: from the experts' expected loads, popular experts get replicas in
//    proportion to their load, unpopular ones are packed together, replicas
//    are assigned to devices longest-processing-time first and the shares of
//    each replicated expert are then water-filled over its devices. Its
//    maximum device load is never above the static placement's: if the
//    heuristic does not do strictly better on a layer (e.g. a uniform
//    profile), that layer gets the static placement, which moves no
//    weights (`usedStatic` says so).
// Loads are in any unit (tokens, shares); device load = sum over the
// device's replicas of share * expert load.
//
// Plain C++17 without LLVM; the public API never throws.
//
//===----------------------------------------------------------------------===//

#ifndef LINA_ANALYSIS_PLACEMENT_H
#define LINA_ANALYSIS_PLACEMENT_H

#include <optional>
#include <string>
#include <vector>

namespace lina {

struct Replica {
  int device = 0;
  double share = 1.0; ///< share of the expert's tokens this replica serves
};

struct LayerPlacement {
  int numDevices = 0;
  int slotsPerDevice = 0;
  /// replicas[e]: expert e's replicas, ordered by device.
  std::vector<std::vector<Replica>> replicas;
  /// True when the lina heuristic fell back to the static placement.
  bool usedStatic = false;

  int numExperts() const { return static_cast<int>(replicas.size()); }
  /// Per-device load for the given per-expert loads.
  std::vector<double> deviceLoads(const std::vector<double> &loads) const;
  double maxDeviceLoad(const std::vector<double> &loads) const;
  /// The experts hosted by `device`, ascending.
  std::vector<int> expertsOn(int device) const;
  /// Checks the invariants (every expert has >= 1 replica, shares are
  /// positive and sum to 1, no expert twice on a device, devices in range,
  /// at most slotsPerDevice replicas per device). Returns "" or the problem.
  std::string verify() const;
};

/// Checks N >= 1, C >= 1, E >= 1 and N * C >= E; returns "" or a message.
std::string checkPlacementShape(int numExperts, int numDevices,
                                int slotsPerDevice);

/// Expert parallelism: expert e on device e / ceil(E/N), share 1.
std::optional<LayerPlacement> staticPlacement(int numExperts, int numDevices,
                                              int slotsPerDevice,
                                              std::string &error);

/// Lina's placement for per-expert expected loads (non-negative, finite).
/// Replica counts: every expert gets 1; each of the N*C - E spare slots
/// goes, one at a time, to the expert with the largest load per replica
/// (ties: lower id), as long as that load exceeds the mean load per slot
/// (total / (N*C)) and the expert has fewer than N replicas. Two
/// assignments are then built and the better balanced one is kept (ties:
/// the first, which moves fewer weights): (1) every expert's first replica
/// on its static device, the extra replicas heaviest first on the least
/// loaded device with a free slot; (2) all replicas longest processing
/// time first, devices then renamed to keep as many experts as possible on
/// their static device. In both, the shares of each replicated expert are
/// water-filled over its devices (heaviest expert first, repeated while
/// the maximum device load improves); replicas left without tokens are
/// dropped, and the shares are rounded to multiples of 1e-6 (summing to 1).
std::optional<LayerPlacement> linaPlacement(const std::vector<double> &loads,
                                            int numDevices, int slotsPerDevice,
                                            std::string &error);

} // namespace lina

#endif // LINA_ANALYSIS_PLACEMENT_H
