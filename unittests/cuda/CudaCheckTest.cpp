//===- CudaCheckTest.cpp - Error macros and GPU detection -----------------===//
//
// Part of the Lina project.
//
// These tests need no GPU: the error macros, the GPU detection and the
// cuda backend's plan checks run before any device is touched.
//
//===----------------------------------------------------------------------===//

#include "lina/rt/cuda/CudaCheck.h"
#include "lina/rt/cuda/CudaBackend.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>

using namespace lina::rt;
using namespace lina::rt::cuda;

namespace {
template <typename F> std::string messageOf(F &&f) {
  try {
    f();
  } catch (const CudaError &e) {
    return e.what();
  }
  return "(no exception)";
}

nlohmann::json loadJson(const std::string &name) {
  std::ifstream in(std::string(LINA_CUDA_TEST_INPUTS) + "/" + name);
  return nlohmann::json::parse(in);
}
} // namespace

TEST(CudaCheck, CudaMacroThrowsWithRankLocationCallAndReason) {
  setErrorRank(5);
  int calls = 0;
  auto failing = [&] {
    ++calls;
    return cudaErrorInvalidValue;
  };
  std::string msg = messageOf([&] { LINA_CUDA_CHECK(failing()); });
  EXPECT_EQ(calls, 1) << "the call must be evaluated exactly once";
  EXPECT_NE(msg.find("rank 5: CUDA error at CudaCheckTest.cpp:"),
            std::string::npos)
      << msg;
  EXPECT_NE(msg.find("failing() failed"), std::string::npos) << msg;
  EXPECT_NE(msg.find("invalid argument"), std::string::npos) << msg;
  EXPECT_NE(msg.find("cudaErrorInvalidValue"), std::string::npos) << msg;
  setErrorRank(0);
}

TEST(CudaCheck, SuccessEvaluatesOnceAndDoesNotThrow) {
  int calls = 0;
  auto ok = [&] {
    ++calls;
    return cudaSuccess;
  };
  EXPECT_NO_THROW(LINA_CUDA_CHECK(ok()));
  EXPECT_EQ(calls, 1);
}

TEST(CudaCheck, CublasMacro) {
  int calls = 0;
  auto failing = [&] {
    ++calls;
    return CUBLAS_STATUS_NOT_INITIALIZED;
  };
  std::string msg = messageOf([&] { LINA_CUBLAS_CHECK(failing()); });
  EXPECT_EQ(calls, 1);
  EXPECT_NE(msg.find("cuBLAS error at CudaCheckTest.cpp:"), std::string::npos)
      << msg;
  EXPECT_NE(msg.find("failing() failed"), std::string::npos) << msg;
  EXPECT_NE(msg.find("CUBLAS_STATUS_NOT_INITIALIZED"), std::string::npos)
      << msg;
}

TEST(CudaCheck, NcclMacro) {
  int calls = 0;
  auto failing = [&] {
    ++calls;
    return ncclInvalidArgument;
  };
  std::string msg = messageOf([&] { LINA_NCCL_CHECK(failing()); });
  EXPECT_EQ(calls, 1);
  EXPECT_NE(msg.find("NCCL error at CudaCheckTest.cpp:"), std::string::npos)
      << msg;
  EXPECT_NE(msg.find("invalid argument"), std::string::npos) << msg;
}

TEST(CudaCheck, AvailabilityComesWithAReason) {
  std::string reason = "unset";
  bool ok = cudaAvailable(&reason);
  if (ok)
    EXPECT_TRUE(reason.empty());
  else
    EXPECT_FALSE(reason.empty());
}

TEST(CudaBackendSetup, WithoutGpuTheConstructorSaysSo) {
  std::string reason;
  if (cudaAvailable(&reason))
    GTEST_SKIP()
        << "a CUDA GPU is present; this test covers machines without one";
  Plan plan =
      parsePlan(loadJson("moe_train_1rank.json").dump(), "moe_train_1rank");
  try {
    CudaBackend backend(plan, 0, 10.0);
    FAIL() << "constructed a cuda backend without a GPU";
  } catch (const NoGpuError &e) {
    EXPECT_NE(std::string(e.what()).find("no CUDA GPU: "), std::string::npos)
        << e.what();
  }
}

TEST(CudaBackendSetup, RejectsMixedFloatTypesInOneOp) {
  nlohmann::json j = loadJson("moe_train_1rank.json");
  j["buffers"][11]["dtype"] = "bf16"; // wd, of dense op 6
  Plan plan = parsePlan(j.dump(), "mixed");
  try {
    CudaBackend backend(plan, 0, 10.0);
    FAIL() << "accepted a dense op over f32 and bf16";
  } catch (const PlanError &e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("op 6 (dense"), std::string::npos) << msg;
    EXPECT_NE(msg.find("one floating-point dtype per op"), std::string::npos)
        << msg;
  }
}

TEST(CudaBackendSetup, RejectsI64ExpertIds) {
  nlohmann::json j = loadJson("moe_train_1rank.json");
  j["buffers"][2]["dtype"] = "i64"; // ids
  Plan plan = parsePlan(j.dump(), "ids64");
  try {
    CudaBackend backend(plan, 0, 10.0);
    FAIL() << "accepted i64 expert ids";
  } catch (const PlanError &e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("op 0 (gate"), std::string::npos) << msg;
    EXPECT_NE(msg.find("must be i32 on the cuda backend"), std::string::npos)
        << msg;
  }
}
