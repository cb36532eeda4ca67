//===- SizeOptionTest.cpp - Pass options: a positive integer or 'auto' ----===//
//
// Part of the Lina project.
//
// SizeOption parses `auto` and positive integers only, prints as it is
// spelled, and round-trips through pass and pipeline options.
//
//===----------------------------------------------------------------------===//

#include "lina/Dialect/Lina/Transforms/Passes.h"

#include "llvm/Support/raw_ostream.h"

#include <gtest/gtest.h>

#include <string>

using namespace mlir;
using namespace mlir::lina;

namespace {
std::string print(const SizeOption &value) {
  std::string text;
  llvm::raw_string_ostream os(text);
  os << value;
  return os.str();
}

TEST(SizeOptionTest, ParsesAutoAndPositiveIntegers) {
  EXPECT_EQ(SizeOption::parse("auto"), SizeOption::getAuto());
  EXPECT_EQ(SizeOption::parse("1"), SizeOption(1));
  EXPECT_EQ(SizeOption::parse("31457280"), SizeOption(31457280));
  EXPECT_EQ(SizeOption::parse("9223372036854775807"), SizeOption(INT64_MAX));
  for (const char *bad : {"", "0", "-5", "+", "abc", "4MB", "1.5", "AUTO", " 4",
                          "9223372036854775808"})
    EXPECT_FALSE(SizeOption::parse(bad)) << "'" << bad << "'";
}

TEST(SizeOptionTest, PrintsAsSpelled) {
  EXPECT_EQ(print(SizeOption::getAuto()), "auto");
  EXPECT_EQ(print(SizeOption(4)), "4");
  EXPECT_TRUE(SizeOption().isAuto());
  EXPECT_EQ(SizeOption(7).getNumber(), 7);
}

TEST(SizeOptionTest, PipelineOptionsRoundTrip) {
  auto options = TrainingPipelineOptions::createFromString(
      "partition-bytes=auto chunks=4");
  ASSERT_TRUE(options);
  EXPECT_TRUE(options->partitionBytes.isAuto());
  EXPECT_EQ(options->chunks.getNumber(), 4);
  std::string text;
  llvm::raw_string_ostream os(text);
  options->print(os);
  EXPECT_NE(os.str().find("partition-bytes=auto"), std::string::npos) << text;
  EXPECT_NE(os.str().find("chunks=4"), std::string::npos) << text;

  auto defaults = TrainingPipelineOptions::createFromString("");
  ASSERT_TRUE(defaults);
  EXPECT_EQ(defaults->partitionBytes.getNumber(), 31457280);
  EXPECT_EQ(defaults->chunks.getNumber(), 2);
}

TEST(SizeOptionTest, BadValuesAreRejected) {
  // The option parser reports the error on stderr, naming the option.
  EXPECT_FALSE(TrainingPipelineOptions::createFromString("chunks=0"));
  EXPECT_FALSE(TrainingPipelineOptions::createFromString("chunks=-2"));
  EXPECT_FALSE(
      TrainingPipelineOptions::createFromString("partition-bytes=many"));
}
} // namespace
