//===- ReplayMain.cpp - Run a fuzz target on files, without libFuzzer -----===//
//
// Part of the Lina project.
//
// Linked into the fuzz targets when they are built without libFuzzer (GCC
// builds): `lina-fuzz-X-replay FILE|DIR...` feeds every file (directories
// are read one level deep) to LLVMFuzzerTestOneInput once. ctest uses it to
// replay the seed corpora and the regression inputs, so every build (and the
// sanitizer build in particular) checks them.
//
//===----------------------------------------------------------------------===//

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <system_error>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

namespace fs = std::filesystem;

namespace {

bool readFile(const fs::path &path, std::vector<uint8_t> &bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return false;
  bytes.assign(std::istreambuf_iterator<char>(in),
               std::istreambuf_iterator<char>());
  return !in.bad();
}

} // namespace

int main(int argc, char **argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
    return 2;
  }
  std::vector<fs::path> inputs;
  for (int i = 1; i < argc; ++i) {
    fs::path arg(argv[i]);
    std::error_code ec;
    if (fs::is_directory(arg, ec)) {
      std::vector<fs::path> files;
      for (const fs::directory_entry &entry : fs::directory_iterator(arg, ec))
        if (entry.is_regular_file(ec) &&
            entry.path().filename().string().front() != '.')
          files.push_back(entry.path());
      if (ec) {
        std::fprintf(stderr, "error: cannot list '%s': %s\n", argv[i],
                     ec.message().c_str());
        return 2;
      }
      std::sort(files.begin(), files.end());
      inputs.insert(inputs.end(), files.begin(), files.end());
    } else if (fs::is_regular_file(arg, ec)) {
      inputs.push_back(arg);
    } else {
      std::fprintf(stderr, "error: no such file or directory: '%s'\n", argv[i]);
      return 2;
    }
  }
  for (const fs::path &path : inputs) {
    std::vector<uint8_t> bytes;
    if (!readFile(path, bytes)) {
      std::fprintf(stderr, "error: cannot read '%s'\n", path.c_str());
      return 2;
    }
    std::fprintf(stderr, "replaying %s (%zu bytes)\n", path.c_str(),
                 bytes.size());
    // libFuzzer never passes a null pointer; neither do we.
    uint8_t empty = 0;
    LLVMFuzzerTestOneInput(bytes.empty() ? &empty : bytes.data(), bytes.size());
  }
  std::printf("replayed %zu inputs\n", inputs.size());
  return 0;
}
