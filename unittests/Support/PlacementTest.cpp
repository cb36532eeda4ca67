//===- PlacementTest.cpp - Expert placement properties --------------------===//
//
// Part of the Lina project.
//
// The lina placement must never have a larger maximum device load than
// expert parallelism (the static placement), must equal it on a uniform
// profile, and must always be a valid placement (replicas on distinct
// devices, shares summing to 1, device capacity respected).
//
//===----------------------------------------------------------------------===//

#include "lina/Support/Placement.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

using namespace lina;

namespace {

LayerPlacement mustPlaceLina(const std::vector<double> &loads, int n, int c) {
  std::string error;
  std::optional<LayerPlacement> p = linaPlacement(loads, n, c, error);
  EXPECT_TRUE(p) << error;
  return p ? *p : LayerPlacement();
}

double staticMax(const std::vector<double> &loads, int n, int c) {
  std::string error;
  std::optional<LayerPlacement> p =
      staticPlacement(static_cast<int>(loads.size()), n, c, error);
  EXPECT_TRUE(p) << error;
  return p ? p->maxDeviceLoad(loads) : 0;
}

TEST(Placement, StaticIsExpertParallelism) {
  std::string error;
  auto p = staticPlacement(8, 4, 2, error);
  ASSERT_TRUE(p) << error;
  EXPECT_EQ(p->verify(), "");
  for (int e = 0; e < 8; ++e) {
    ASSERT_EQ(p->replicas[e].size(), 1u);
    EXPECT_EQ(p->replicas[e][0].device, e / 2);
    EXPECT_EQ(p->replicas[e][0].share, 1.0);
  }
  EXPECT_EQ(p->expertsOn(3), (std::vector<int>{6, 7}));
  // Uneven: 6 experts on 4 devices with 2 slots: ceil(6/4) = 2 per device.
  p = staticPlacement(6, 4, 2, error);
  ASSERT_TRUE(p) << error;
  EXPECT_EQ(p->replicas[5][0].device, 2);
  EXPECT_EQ(p->expertsOn(3), std::vector<int>{});
}

TEST(Placement, RejectsBadShapes) {
  std::string error;
  EXPECT_FALSE(staticPlacement(8, 0, 2, error));
  EXPECT_NE(error.find("devices must be positive"), std::string::npos) << error;
  EXPECT_FALSE(linaPlacement(std::vector<double>(8, 1.0), 3, 2, error));
  EXPECT_NE(error.find("3 devices with 2 expert slots each cannot hold 8 "
                       "experts"),
            std::string::npos)
      << error;
  EXPECT_FALSE(linaPlacement(std::vector<double>(8, 1.0), 4, 0, error));
  EXPECT_NE(error.find("slots per device must be positive"), std::string::npos)
      << error;
  EXPECT_FALSE(linaPlacement({1.0, -1.0}, 2, 1, error));
  EXPECT_NE(error.find("expert 1 has load"), std::string::npos) << error;
  EXPECT_FALSE(linaPlacement({1.0, NAN}, 2, 1, error));
  EXPECT_FALSE(linaPlacement({}, 2, 1, error));
}

TEST(Placement, UniformEqualsStatic) {
  for (int n : {1, 2, 4, 8})
    for (int c : {1, 2, 4}) {
      int e = n * c;
      std::vector<double> loads(e, 1.0 / e);
      LayerPlacement p = mustPlaceLina(loads, n, c);
      EXPECT_EQ(p.verify(), "");
      EXPECT_NEAR(p.maxDeviceLoad(loads), staticMax(loads, n, c), 1e-12)
          << n << " devices x " << c;
      // With spare slots too: E = N experts, C slots each.
      std::vector<double> fewer(n, 3.0);
      LayerPlacement q = mustPlaceLina(fewer, n, c);
      EXPECT_EQ(q.verify(), "");
      EXPECT_NEAR(q.maxDeviceLoad(fewer), staticMax(fewer, n, c), 1e-9);
    }
}

TEST(Placement, UniformKeepsExpertsHome) {
  // No reason to move anything: every expert stays on its static device.
  std::vector<double> loads(16, 1.0);
  LayerPlacement p = mustPlaceLina(loads, 4, 4);
  for (int e = 0; e < 16; ++e) {
    ASSERT_EQ(p.replicas[e].size(), 1u);
    EXPECT_EQ(p.replicas[e][0].device, e / 4) << "expert " << e;
  }
}

TEST(Placement, HotExpertIsReplicatedAndBalanced) {
  // 4 devices x 2 slots, 4 experts; expert 0 carries 70% of the tokens.
  std::vector<double> loads = {0.7, 0.1, 0.1, 0.1};
  LayerPlacement p = mustPlaceLina(loads, 4, 2);
  ASSERT_EQ(p.verify(), "");
  EXPECT_FALSE(p.usedStatic);
  EXPECT_GE(p.replicas[0].size(), 3u);
  for (int e = 1; e < 4; ++e)
    EXPECT_EQ(p.replicas[e].size(), 1u) << "expert " << e;
  // Perfect balance is reachable: 0.25 per device (up to the 1e-6 grid of
  // the shares).
  EXPECT_NEAR(p.maxDeviceLoad(loads), 0.25, 1e-5);
  EXPECT_NEAR(staticMax(loads, 4, 2), 0.7, 1e-12);
}

TEST(Placement, ColdExpertsArePackedTogether) {
  // 2 devices x 4 slots, 4 experts: two hot, two nearly idle.
  std::vector<double> loads = {0.45, 0.45, 0.05, 0.05};
  LayerPlacement p = mustPlaceLina(loads, 2, 4);
  ASSERT_EQ(p.verify(), "");
  EXPECT_NEAR(p.maxDeviceLoad(loads), 0.5, 1e-5);
  EXPECT_LE(p.maxDeviceLoad(loads), staticMax(loads, 2, 4) + 1e-12);
  // The cold experts are never replicated.
  EXPECT_EQ(p.replicas[2].size(), 1u);
  EXPECT_EQ(p.replicas[3].size(), 1u);
}

TEST(Placement, NoSpareSlotsStillBalances) {
  // N*C == E: no replication possible; LPT packing of 8 experts on 4
  // devices beats the contiguous static blocks (every slot is used, so the
  // hottest expert shares its device with a cold one: 8 + 1).
  std::vector<double> loads = {8, 7, 1, 1, 1, 1, 1, 1};
  LayerPlacement p = mustPlaceLina(loads, 4, 2);
  ASSERT_EQ(p.verify(), "");
  for (const auto &reps : p.replicas)
    EXPECT_EQ(reps.size(), 1u);
  EXPECT_NEAR(p.maxDeviceLoad(loads), 9, 1e-12);
  EXPECT_NEAR(staticMax(loads, 4, 2), 15, 1e-12);
}

TEST(Placement, AllZeroLoadsGiveStatic) {
  std::vector<double> loads(8, 0.0);
  LayerPlacement p = mustPlaceLina(loads, 4, 2);
  EXPECT_TRUE(p.usedStatic);
  EXPECT_EQ(p.verify(), "");
}

TEST(Placement, VerifyCatchesBrokenTables) {
  LayerPlacement p;
  p.numDevices = 2;
  p.slotsPerDevice = 1;
  p.replicas = {{{0, 0.5}, {0, 0.5}}, {{1, 1.0}}};
  EXPECT_NE(p.verify().find("two replicas on device 0"), std::string::npos);
  p.replicas = {{{0, 0.5}, {1, 0.4}}, {{1, 1.0}}};
  EXPECT_NE(p.verify().find("sum to"), std::string::npos);
  p.replicas = {{{0, 1.0}}, {}};
  EXPECT_NE(p.verify().find("expert 1 has no replica"), std::string::npos);
  p.replicas = {{{0, 1.0}}, {{0, 1.0}}};
  EXPECT_NE(p.verify().find("device 0 hosts 2 experts but has 1 slots"),
            std::string::npos);
  p.replicas = {{{0, 1.0}}, {{2, 1.0}}};
  EXPECT_NE(p.verify().find("outside [0, 2)"), std::string::npos);
}

/// Random profiles of every shape: uniform noise, Zipf skew with a random
/// permutation, sparse (many idle experts), one-hot.
TEST(Placement, NeverWorseThanStaticOnRandomProfiles) {
  std::mt19937_64 rng(12345);
  int improved = 0, cases = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    int n = 1 + static_cast<int>(rng() % 8);
    int c = 1 + static_cast<int>(rng() % 4);
    int e = 1 + static_cast<int>(rng() % (n * c));
    std::vector<double> loads(e);
    int kind = iter % 4;
    std::uniform_real_distribution<double> u(0, 1);
    double s = 0.5 + 2 * u(rng);
    std::vector<int> perm(e);
    for (int i = 0; i < e; ++i)
      perm[i] = i;
    std::shuffle(perm.begin(), perm.end(), rng);
    for (int i = 0; i < e; ++i) {
      switch (kind) {
      case 0:
        loads[i] = u(rng);
        break;
      case 1:
        loads[perm[i]] = std::pow(i + 1.0, -s);
        break;
      case 2:
        loads[i] = u(rng) < 0.3 ? u(rng) * 100 : 0.0;
        break;
      default:
        loads[i] = i == perm[0] ? 1.0 : 0.0;
      }
    }
    std::string error;
    std::optional<LayerPlacement> p = linaPlacement(loads, n, c, error);
    ASSERT_TRUE(p) << error;
    ASSERT_EQ(p->verify(), "") << "iteration " << iter;
    double lina = p->maxDeviceLoad(loads), base = staticMax(loads, n, c);
    ASSERT_LE(lina, base * (1 + 1e-9)) << "iteration " << iter;
    // Total load is conserved.
    double total = 0, placed = 0;
    for (double x : loads)
      total += x;
    for (double x : p->deviceLoads(loads))
      placed += x;
    ASSERT_NEAR(placed, total, 1e-9 * std::max(1.0, total));
    ++cases;
    improved += lina < base * (1 - 1e-6);
  }
  // Skewed profiles are where the heuristic should actually help.
  EXPECT_GT(improved, cases / 4);
}

} // namespace
