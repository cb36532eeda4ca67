//===- OutputFileTest.cpp - Atomic, error-checked output files ------------===//
//
// Part of the Lina project.
//
// writeOutputFile replaces a file only with a complete one, reports every
// write error with the file and the reason, and leaves no temporary files.
//
//===----------------------------------------------------------------------===//

#include "lina/rt/OutputFile.h"

#include <gtest/gtest.h>

#include <csignal>
#include <cstdlib>
#include <dirent.h>
#include <fstream>
#include <sstream>
#include <string>
#include <sys/resource.h>
#include <unistd.h>
#include <vector>

using namespace lina::rt;

namespace {
/// A fresh directory, removed with its files at the end of the test.
class TempDir {
public:
  TempDir() {
    const char *base = std::getenv("TMPDIR");
    std::string tmpl =
        std::string(base && *base ? base : "/tmp") + "/lina-output-test.XXXXXX";
    std::vector<char> name(tmpl.begin(), tmpl.end());
    name.push_back('\0');
    if (!mkdtemp(name.data()))
      throw std::runtime_error("mkdtemp failed");
    path = name.data();
  }
  ~TempDir() {
    for (const std::string &f : files())
      unlink((path + "/" + f).c_str());
    rmdir(path.c_str());
  }
  std::vector<std::string> files() const {
    std::vector<std::string> out;
    if (DIR *d = opendir(path.c_str())) {
      while (dirent *e = readdir(d))
        if (std::string(e->d_name) != "." && std::string(e->d_name) != "..")
          out.push_back(e->d_name);
      closedir(d);
    }
    return out;
  }
  std::string path;
};

std::string readAll(const std::string &path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string errorOf(const std::string &path, const std::string &contents) {
  try {
    writeOutputFile(path, contents, "trace");
  } catch (const OutputError &e) {
    return e.what();
  }
  return "(written)";
}

TEST(OutputFile, WritesAndReplacesWithoutLeavingTemporaries) {
  TempDir dir;
  std::string file = dir.path + "/out.json";
  writeOutputFile(file, "first\n", "trace");
  EXPECT_EQ(readAll(file), "first\n");
  writeOutputFile(file, "second\n", "trace");
  EXPECT_EQ(readAll(file), "second\n");
  EXPECT_EQ(dir.files(), std::vector<std::string>{"out.json"});
}

TEST(OutputFile, AFullDeviceIsAnError) {
  EXPECT_EQ(errorOf("/dev/full", "data"),
            "cannot write trace '/dev/full': writing: No space left on device");
}

TEST(OutputFile, AMissingDirectoryIsAnError) {
  TempDir dir;
  std::string file = dir.path + "/none/out.json";
  EXPECT_EQ(errorOf(file, "data"), "cannot write trace '" + file +
                                       "': creating a temporary file in '" +
                                       dir.path +
                                       "/none': No such file or directory");
}

TEST(OutputFile, ADirectoryIsNotAFile) {
  TempDir dir;
  EXPECT_NE(errorOf(dir.path, "data").find("Is a directory"),
            std::string::npos);
}

TEST(OutputFile, AFailedWriteLeavesTheOldFileIntact) {
  TempDir dir;
  std::string file = dir.path + "/out.json";
  writeOutputFile(file, "previous\n", "trace");
  // A file size limit makes the write fail half-way (EFBIG).
  auto old = std::signal(SIGXFSZ, SIG_IGN);
  rlimit saved;
  getrlimit(RLIMIT_FSIZE, &saved);
  rlimit small = saved;
  small.rlim_cur = 64;
  setrlimit(RLIMIT_FSIZE, &small);
  std::string error = errorOf(file, std::string(4096, 'x'));
  setrlimit(RLIMIT_FSIZE, &saved);
  std::signal(SIGXFSZ, old);
  EXPECT_EQ(error,
            "cannot write trace '" + file + "': writing: File too large");
  EXPECT_EQ(readAll(file), "previous\n");
  EXPECT_EQ(dir.files(), std::vector<std::string>{"out.json"});
}
} // namespace
