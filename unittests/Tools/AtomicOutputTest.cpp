//===- AtomicOutputTest.cpp - -o replaced only on success -----------------===//
//
// Part of the Lina project.
//
//===----------------------------------------------------------------------===//

#include "lina/Tools/AtomicOutput.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace {

/// argv for a list of strings (kept alive by the caller's vector).
std::vector<char *> argvOf(std::vector<std::string> &args) {
  std::vector<char *> argv;
  for (std::string &a : args)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  return argv;
}

std::optional<lina::OutputArg> find(std::vector<std::string> args) {
  std::vector<char *> argv = argvOf(args);
  return lina::findOutputArg(static_cast<int>(args.size()), argv.data());
}

TEST(FindOutputArg, Forms) {
  EXPECT_FALSE(find({"tool", "in.mlir"}));
  auto a = find({"tool", "in.mlir", "-o", "out"});
  ASSERT_TRUE(a);
  EXPECT_EQ(a->index, 3);
  EXPECT_EQ(a->prefix, "");
  a = find({"tool", "--o", "out", "in.mlir"});
  ASSERT_TRUE(a);
  EXPECT_EQ(a->index, 2);
  a = find({"tool", "-o=out"});
  ASSERT_TRUE(a);
  EXPECT_EQ(a->index, 1);
  EXPECT_EQ(a->prefix, "-o=");
  a = find({"tool", "--o=out"});
  ASSERT_TRUE(a);
  EXPECT_EQ(a->prefix, "--o=");
}

TEST(FindOutputArg, LeavesAmbiguousCommandLinesToTheTool) {
  // Two outputs: the tool reports the error itself.
  EXPECT_FALSE(find({"tool", "-o", "a", "-o", "b"}));
  // A response file may hold another -o.
  EXPECT_FALSE(find({"tool", "@args", "-o", "a"}));
  // -o without a value.
  EXPECT_FALSE(find({"tool", "in.mlir", "-o"}));
  // Options that merely start with "o" are not the output.
  EXPECT_FALSE(find({"tool", "-opt", "--output-split-marker=x"}));
  // After "--" everything is positional.
  EXPECT_FALSE(find({"tool", "--", "-o", "a"}));
  // The value of -o is not scanned as an option.
  auto a = find({"tool", "-o", "-o=x"});
  ASSERT_TRUE(a);
  EXPECT_EQ(a->index, 2);
}

class AtomicOutputTest : public ::testing::Test {
protected:
  void SetUp() override {
    ASSERT_FALSE(
        llvm::sys::fs::createUniqueDirectory("lina-atomic-output", dir));
    target = (dir + "/out.txt").str();
    write(target, "old");
  }
  void TearDown() override { llvm::sys::fs::remove_directories(dir); }

  static void write(const std::string &path, llvm::StringRef text) {
    std::error_code ec;
    llvm::raw_fd_ostream os(path, ec);
    ASSERT_FALSE(ec) << ec.message();
    os << text;
  }
  static std::string read(const std::string &path) {
    auto buffer = llvm::MemoryBuffer::getFile(path);
    return buffer ? (*buffer)->getBuffer().str() : "<missing>";
  }
  std::vector<std::string> filesInDir() {
    std::vector<std::string> names;
    std::error_code ec;
    for (llvm::sys::fs::directory_iterator it(dir, ec), end; it != end && !ec;
         it.increment(ec))
      names.push_back(llvm::sys::path::filename(it->path()).str());
    return names;
  }
  /// Runs a fake tool that writes "new" to its -o file and returns `rc`;
  /// records the path it was given.
  int run(std::vector<std::string> args, int rc) {
    std::vector<char *> argv = argvOf(args);
    return lina::runWithAtomicOutput(
        static_cast<int>(args.size()), argv.data(), [&](int n, char **a) {
          std::optional<lina::OutputArg> out = lina::findOutputArg(n, a);
          if (!out)
            return 2;
          given = llvm::StringRef(a[out->index])
                      .drop_front(out->prefix.size())
                      .str();
          write(given, "new");
          return rc;
        });
  }

  llvm::SmallString<128> dir;
  std::string target, given;
};

TEST_F(AtomicOutputTest, FailureKeepsTheOldFile) {
  EXPECT_EQ(run({"tool", "-o", target}, 1), 1);
  EXPECT_NE(given, target);
  EXPECT_EQ(llvm::sys::path::parent_path(given), llvm::StringRef(dir));
  EXPECT_EQ(read(target), "old");
  EXPECT_EQ(filesInDir(), std::vector<std::string>{"out.txt"});
}

TEST_F(AtomicOutputTest, SuccessReplacesTheFile) {
  EXPECT_EQ(run({"tool", "-o=" + target}, 0), 0);
  EXPECT_NE(given, target);
  EXPECT_EQ(read(target), "new");
  EXPECT_EQ(filesInDir(), std::vector<std::string>{"out.txt"});
}

TEST_F(AtomicOutputTest, NewFileAppearsOnlyOnSuccess) {
  std::string fresh = (dir + "/fresh.txt").str();
  EXPECT_EQ(run({"tool", "-o", fresh}, 3), 3);
  EXPECT_FALSE(llvm::sys::fs::exists(fresh));
  EXPECT_EQ(run({"tool", "-o", fresh}, 0), 0);
  EXPECT_EQ(read(fresh), "new");
}

TEST_F(AtomicOutputTest, MissingDirectoryIsAnErrorBeforeTheToolRuns) {
  given.clear();
  EXPECT_EQ(run({"tool", "-o", (dir + "/no/such/out.txt").str()}, 0), 1);
  EXPECT_TRUE(given.empty());
}

TEST_F(AtomicOutputTest, StandardOutputIsPassedThrough) {
  std::vector<std::string> args{"tool", "-o", "-"};
  std::vector<char *> argv = argvOf(args);
  std::string seen;
  EXPECT_EQ(lina::runWithAtomicOutput(3, argv.data(),
                                      [&](int n, char **a) {
                                        seen = a[2];
                                        return 0;
                                      }),
            0);
  EXPECT_EQ(seen, "-");
}

} // namespace
