//===- NcclCommMpiTest.cpp - Communicator creation under mpirun -----------===//
//
// Part of the Lina project.
//
// Run with 2 ranks (ctest LinaNcclCommMpiTest); needs no GPU. The ids
// travel over MPI and communicator creation is non-blocking and bounded:
//  * without a GPU (or with both ranks on one GPU, which NCCL refuses)
//    creation fails on every rank with an error naming the rank and what
//    failed, and MPI still works afterwards;
//  * a peer that never arrives is a timeout naming the rank, not a hang.
//
//===----------------------------------------------------------------------===//

#include "lina/rt/cuda/CudaCheck.h"
#include "lina/rt/cuda/NcclComm.h"

#include <gtest/gtest.h>
#include <mpi.h>

#include <chrono>
#include <fstream>
#include <sstream>

using namespace lina::rt;
using namespace lina::rt::cuda;

namespace {
int worldRank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}

Plan loadTestPlan() {
  std::ifstream in(std::string(LINA_RUNTIME_TEST_PLANS) +
                   "/moe2_np2.lina.json");
  std::stringstream ss;
  ss << in.rdbuf();
  return parsePlan(ss.str(), "moe2_np2");
}
} // namespace

TEST(NcclCommMpi, CreationOnOneDeviceOrNoneFailsBoundedAndNamed) {
  int size = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  ASSERT_EQ(size, 2) << "run under mpirun -np 2";
  int rank = worldRank();
  setErrorRank(rank);
  configureEagerLoading();
  Plan plan = loadTestPlan();
  auto begin = std::chrono::steady_clock::now();
  std::string msg;
  try {
    // No cudaSetDevice: without a GPU NCCL cannot create a communicator;
    // with GPUs both ranks use device 0, which NCCL rejects.
    NcclComms comms(plan, rank, 20.0);
    FAIL() << "NCCL created communicators for two ranks on one device or none";
  } catch (const CommFailure &e) {
    msg = e.what();
  } catch (const CudaError &e) {
    msg = e.what();
  }
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - begin)
          .count();
  EXPECT_EQ(msg.rfind("rank " + std::to_string(rank) + ": ", 0), 0u) << msg;
  EXPECT_NE(msg.find("NCCL"), std::string::npos) << msg;
  EXPECT_LT(seconds, 25.0) << msg;
  std::printf("%s (%.2f s)\n", msg.c_str(), seconds);
  // Both ranks are still in step with MPI.
  int one = 1, sum = 0;
  MPI_Allreduce(&one, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  EXPECT_EQ(sum, 2);
}

TEST(NcclCommMpi, AMissingPeerIsATimeoutNamingTheRankNotAHang) {
  int rank = worldRank();
  setErrorRank(rank);
  Plan plan = loadTestPlan();
  MPI_Barrier(MPI_COMM_WORLD); // both start together; rank 1 never joins
  if (rank == 0) {
    auto begin = std::chrono::steady_clock::now();
    try {
      NcclComms comms(plan, rank, 1.0);
      FAIL() << "communicators created without the peer";
    } catch (const CommFailure &e) {
      std::string msg = e.what();
      EXPECT_EQ(msg.rfind("rank 0: ", 0), 0u) << msg;
      EXPECT_NE(msg.find("no answer within the timeout of 1 s"),
                std::string::npos)
          << msg;
      std::printf("%s\n", msg.c_str());
    }
    double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - begin)
            .count();
    EXPECT_GE(seconds, 1.0);
    EXPECT_LT(seconds, 5.0);
    int go = 1;
    MPI_Send(&go, 1, MPI_INT, 1, 7, MPI_COMM_WORLD);
  } else {
    // Only now join the collective duplicate rank 0 gave up on, so both
    // ranks issued the same collectives before the next test.
    int go = 0;
    MPI_Recv(&go, 1, MPI_INT, 0, 7, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    MPI_Comm dup = MPI_COMM_NULL;
    MPI_Request request = MPI_REQUEST_NULL;
    MPI_Comm_idup(MPI_COMM_WORLD, &dup, &request);
    MPI_Wait(&request, MPI_STATUS_IGNORE);
  }
}

int main(int argc, char **argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &provided);
  ::testing::InitGoogleTest(&argc, argv);
  if (worldRank() != 0) {
    auto &listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  int rc = RUN_ALL_TESTS();
  int worst = 0;
  MPI_Allreduce(&rc, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  MPI_Finalize();
  return worst;
}
