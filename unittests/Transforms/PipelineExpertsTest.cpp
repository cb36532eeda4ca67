//===- PipelineExpertsTest.cpp - Properties of expert pipelining ---------===//
//
// Part of the Lina project.
//
// Runs --lina-pipeline-experts through the C++ API on many random chain
// shapes and chunk counts, and checks that the chunks cover the capacity
// in order, that every chunk's ops carry its index, and that program order
// is the documented interleaving.
//
//===----------------------------------------------------------------------===//

#include "lina/Dialect/Lina/IR/LinaOps.h"
#include "lina/Dialect/Lina/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"

#include <gtest/gtest.h>

#include <random>
#include <sstream>

using namespace mlir;
using namespace mlir::lina;

namespace {
std::string tensorType(std::initializer_list<int64_t> shape) {
  std::ostringstream os;
  os << "tensor<";
  for (int64_t d : shape)
    os << d << "x";
  os << "f32>";
  return os.str();
}

/// A forward chain, and optionally the backward chain that reads its
/// received tokens, on `n` ranks with `local` experts each.
std::string chainIR(int64_t n, int64_t local, int64_t capacity, int64_t hidden,
                    int64_t ffn, bool backward) {
  int64_t experts = n * local;
  std::string buf = tensorType({experts, capacity, hidden});
  std::string recv = tensorType({local, n * capacity, hidden});
  std::string w1 = tensorType({local, hidden, ffn});
  std::string w2 = tensorType({local, ffn, hidden});
  std::string group = "group = #lina.group<@g, \"ep\">";
  std::ostringstream ir;
  ir << "lina.grid @g shape = [" << n << "] groups = {ep = array<i64: 0>}\n"
     << "func.func @f(%buf: " << buf << ", %dy: " << buf << ", %w1: " << w1
     << ", %w2: " << w2 << ") -> (" << buf << ", " << buf << ", " << w1
     << ") {\n"
     << "  %r = lina.all_to_all %buf " << group
     << " split_axis = 0 concat_axis = 1 : " << buf << " -> " << recv << "\n"
     << "  %e = lina.expert_ffn %r, %w1, %w2 activation = gelu : (" << recv
     << ", " << w1 << ", " << w2 << ") -> " << recv << "\n"
     << "  %b = lina.all_to_all %e " << group
     << " split_axis = 1 concat_axis = 0 : " << recv << " -> " << buf << "\n";
  if (backward) {
    ir << "  %de = lina.all_to_all %dy " << group
       << " split_axis = 0 concat_axis = 1 : " << buf << " -> " << recv << "\n"
       << "  %dr, %dw1, %dw2 = lina.expert_ffn_grad %de, %r, %w1, %w2 "
          "activation = gelu : ("
       << recv << ", " << recv << ", " << w1 << ", " << w2 << ") -> (" << recv
       << ", " << w1 << ", " << w2 << ")\n"
       << "  %db = lina.all_to_all %dr " << group
       << " split_axis = 1 concat_axis = 0 : " << recv << " -> " << buf << "\n"
       << "  return %b, %db, %dw1 : " << buf << ", " << buf << ", " << w1
       << "\n}\n";
  } else {
    ir << "  return %b, %dy, %w1 : " << buf << ", " << buf << ", " << w1
       << "\n}\n";
  }
  return ir.str();
}

/// The chunk index of `op`'s `chunk` attribute, or -1.
int64_t chunkOf(Operation *op) {
  auto chunk = op->getAttrOfType<ChunkAttr>("chunk");
  return chunk ? chunk.getIndex() : -1;
}

TEST(PipelineExperts, RandomChainsAreChunkedInOrder) {
  MLIRContext context;
  context.loadDialect<LinaDialect, func::FuncDialect, arith::ArithDialect,
                      tensor::TensorDialect>();
  context.getDiagEngine().registerHandler([](Diagnostic &) {});
  std::mt19937_64 rng(7);
  for (int iter = 0; iter < 200; ++iter) {
    int64_t n = int64_t(1) << (rng() % 4), local = 1 + rng() % 2;
    int64_t capacity = 1 + rng() % 24, hidden = 1 + rng() % 8;
    int64_t ffn = 1 + rng() % 8;
    int64_t k = 1 + rng() % capacity;
    bool backward = rng() % 2;
    std::string ir = chainIR(n, local, capacity, hidden, ffn, backward);
    SCOPED_TRACE(ir + " chunks=" + std::to_string(k));
    OwningOpRef<ModuleOp> module = parseSourceString<ModuleOp>(ir, &context);
    ASSERT_TRUE(module);
    PassManager pm(&context);
    LinaPipelineExpertsPassOptions options;
    options.chunks = SizeOption(k);
    pm.nest<func::FuncOp>().addPass(createLinaPipelineExpertsPass(options));
    ASSERT_TRUE(succeeded(pm.run(*module)));
    ASSERT_TRUE(succeeded(verify(*module)));

    auto func = *module->getOps<func::FuncOp>().begin();
    // Program order of the chunked ops of each chain: 'A' a dispatch
    // all_to_all, 'F' an FFN (or its gradient), 'B' a return all_to_all,
    // each with its chunk index.
    std::string order;
    SmallVector<int64_t> offsets, sizes;
    func.walk([&](Operation *op) {
      if (auto a2a = dyn_cast<AllToAllOp>(op)) {
        if (a2a.getSplitAxis() == 0) {
          order += 'A';
          // The sliced buffer chunk: [E, c_i, H] at slot offset o_i.
          auto slice = a2a.getInput().getDefiningOp<tensor::ExtractSliceOp>();
          if (k > 1 && slice && offsets.size() < static_cast<size_t>(k)) {
            offsets.push_back(slice.getStaticOffsets()[1]);
            sizes.push_back(slice.getStaticSizes()[1]);
          }
        } else {
          order += 'B';
        }
      } else if (isa<ExpertFfnOp, ExpertFfnGradOp>(op)) {
        order += 'F';
      } else {
        return;
      }
      order += std::to_string(std::max<int64_t>(chunkOf(op), 0));
    });
    // a2a(0) a2a(1) ... a2a(k-1) ffn(0) a2a'(0) ffn(1) a2a'(1) ... per
    // chain: every chunk is sent where the original all_to_all was.
    std::string expected;
    for (int64_t i = 0; i < k; ++i)
      expected += "A" + std::to_string(i);
    for (int64_t i = 0; i < k; ++i)
      expected += "F" + std::to_string(i) + "B" + std::to_string(i);
    EXPECT_EQ(order, backward ? expected + expected : expected);
    if (k == 1)
      continue;
    // The forward chunks cover [0, capacity) in order, sizes within one.
    ASSERT_EQ(static_cast<int64_t>(offsets.size()), k);
    int64_t next = 0;
    for (int64_t i = 0; i < k; ++i) {
      EXPECT_EQ(offsets[i], next);
      EXPECT_GE(sizes[i], capacity / k);
      EXPECT_LE(sizes[i], capacity / k + 1);
      next += sizes[i];
    }
    EXPECT_EQ(next, capacity);
    // Backward: every chunk's gradient reads the matching forward chunk,
    // and the weight gradient is a chain of k - 1 additions.
    if (backward) {
      int64_t adds = 0;
      func.walk([&](ExpertFfnGradOp grad) {
        auto saved = grad.getInput().getDefiningOp<AllToAllOp>();
        ASSERT_TRUE(saved);
        EXPECT_EQ(chunkOf(saved), chunkOf(grad));
      });
      func.walk([&](arith::AddFOp) { ++adds; });
      EXPECT_EQ(adds, 2 * (k - 1)); // w1 and w2
    }
  }
}
} // namespace
