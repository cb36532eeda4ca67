//===- PartitionAllReduceTest.cpp - Properties of all_reduce partitioning -===//
//
// Part of the Lina project.
//
// Runs --lina-partition-allreduce through the C++ API on the shipped
// examples and on many random shapes and sizes, and checks that
// partitioning keeps every byte, in order, in pieces of at most the limit.
//
//===----------------------------------------------------------------------===//

#include "lina/Dialect/Lina/IR/LinaOps.h"
#include "lina/Dialect/Lina/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"

#include <gtest/gtest.h>

#include <random>
#include <sstream>

using namespace mlir;
using namespace mlir::lina;

namespace {
class PartitionTest : public ::testing::Test {
protected:
  PartitionTest() {
    context.loadDialect<LinaDialect, func::FuncDialect, arith::ArithDialect,
                        tensor::TensorDialect>();
    // Keep failures quiet; the tests check results, not diagnostics.
    context.getDiagEngine().registerHandler([](Diagnostic &) {});
  }

  OwningOpRef<ModuleOp> parse(const std::string &text) {
    return parseSourceString<ModuleOp>(text, &context);
  }

  OwningOpRef<ModuleOp> parseFile(const std::string &path) {
    return parseSourceFile<ModuleOp>(path, &context);
  }

  LogicalResult partition(ModuleOp module, int64_t bytes) {
    PassManager pm(&context);
    LinaPartitionAllReducePassOptions options;
    options.partitionBytes = SizeOption(bytes);
    pm.nest<func::FuncOp>().addPass(createLinaPartitionAllReducePass(options));
    return pm.run(module);
  }

  MLIRContext context;
};

struct Summary {
  int64_t ops = 0;
  int64_t bytes = 0;
};

Summary summarize(ModuleOp module) {
  Summary s;
  module.walk([&](AllReduceOp op) {
    ++s.ops;
    s.bytes += getTensorBytes(op.getInput().getType());
  });
  return s;
}

TEST_F(PartitionTest, HalvingTheSizeOnTheExamples) {
  for (const char *name : {"switch_train_ep8.mlir", "moe_train_ep4.mlir"}) {
    std::string path = std::string(LINA_SOURCE_DIR) + "/examples/" + name;
    OwningOpRef<ModuleOp> original = parseFile(path);
    ASSERT_TRUE(original) << path;
    Summary base = summarize(*original);
    ASSERT_GT(base.ops, 0);
    int64_t previousOps = base.ops;
    for (int64_t limit = int64_t(1) << 24; limit >= 512; limit /= 2) {
      OwningOpRef<ModuleOp> module = parseFile(path);
      ASSERT_TRUE(succeeded(partition(*module, limit))) << limit;
      Summary s = summarize(*module);
      EXPECT_GE(s.ops, previousOps) << name << " partition-bytes=" << limit;
      EXPECT_EQ(s.bytes, base.bytes) << name << " partition-bytes=" << limit;
      previousOps = s.ops;
    }
    EXPECT_GT(previousOps, base.ops);
  }
}

TEST_F(PartitionTest, RandomShapesKeepBytesAndOrder) {
  std::mt19937_64 rng(20231);
  const char *types[] = {"f32", "bf16", "f16", "f64"};
  const int64_t widths[] = {4, 2, 2, 8};
  for (int iter = 0; iter < 300; ++iter) {
    int rank = 1 + static_cast<int>(rng() % 3);
    std::vector<int64_t> shape;
    int64_t numel = 1;
    for (int i = 0; i < rank; ++i) {
      shape.push_back(1 + static_cast<int64_t>(rng() % 48));
      numel *= shape.back();
    }
    int t = static_cast<int>(rng() % 4);
    int64_t bytes = numel * widths[t];
    int64_t limit = widths[t] + static_cast<int64_t>(rng() % (2 * bytes));

    std::ostringstream type;
    type << "tensor<";
    for (int64_t d : shape)
      type << d << "x";
    type << types[t] << ">";
    std::ostringstream ir;
    ir << "lina.grid @g shape = [4] groups = {dp = array<i64: 0>}\n"
       << "func.func @f(%a: " << type.str() << ") -> " << type.str() << " {\n"
       << "  %0 = lina.all_reduce %a group = #lina.group<@g, \"dp\"> "
          "reduction = sum : "
       << type.str() << "\n  return %0 : " << type.str() << "\n}\n";
    OwningOpRef<ModuleOp> module = parse(ir.str());
    ASSERT_TRUE(module) << ir.str();
    ASSERT_TRUE(succeeded(partition(*module, limit))) << ir.str();

    SmallVector<AllReduceOp> parts;
    module->walk([&](AllReduceOp op) { parts.push_back(op); });
    SCOPED_TRACE(ir.str() + " partition-bytes=" + std::to_string(limit));
    if (bytes <= limit) {
      ASSERT_EQ(parts.size(), 1u);
      EXPECT_FALSE(parts[0].getPartitionAttr());
      continue;
    }
    int64_t perPart = limit / widths[t];
    int64_t expectedCount = (numel + perPart - 1) / perPart;
    ASSERT_EQ(static_cast<int64_t>(parts.size()), expectedCount);
    int64_t next = 0;
    for (auto [i, op] : llvm::enumerate(parts)) {
      PartitionAttr p = op.getPartitionAttr();
      ASSERT_TRUE(p);
      EXPECT_EQ(p.getIndex(), static_cast<int64_t>(i)); // program order
      EXPECT_EQ(p.getCount(), expectedCount);
      EXPECT_EQ(p.getOriginal(), numel);
      EXPECT_EQ(p.getOffset(), next); // contiguous: no gap, no overlap
      int64_t size = op.getInput().getType().getNumElements();
      EXPECT_LE(size * widths[t], limit);
      EXPECT_GT(size, 0);
      next += size;
    }
    EXPECT_EQ(next, numel); // every element reduced exactly once
    // And the function still returns a value of the original type.
    auto func = *module->getOps<func::FuncOp>().begin();
    EXPECT_EQ(func.getResultTypes()[0],
              func.getBody().front().getTerminator()->getOperand(0).getType());
  }
}
} // namespace
