//===- lina-calibrate.cpp - Measure this machine as a cluster file --------===//
//
// Part of the Lina project.
//
// mpirun -np R lina-calibrate [-o|--output cluster.json]
//
// Measures, with all R ranks running at once (so that ranks sharing cores
// are measured as they will run): the BLAS sgemm rate and the memory
// bandwidth of one rank, and the MPI link between ranks (latency from small
// messages, bandwidth from large all-to-alls). Writes a cluster file
// (docs/COST_MODEL.md) describing the R ranks as one node, for
// `lina-run --backend sim` to predict CPU runs with.
//
//===----------------------------------------------------------------------===//

#include "lina/rt/OutputFile.h"

#include <CLI/CLI.hpp>
#include <cblas.h>
#include <mpi.h>

#ifndef LINA_VERSION
#define LINA_VERSION "0.1.0"
#endif

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

namespace {
const char *kUsage = "usage: mpirun -np R lina-calibrate [-o FILE]";

/// The help's usage line, instead of CLI11's generated one.
class Formatter : public CLI::Formatter {
public:
  std::string make_usage(const CLI::App *, std::string) const override {
    return std::string(kUsage) + "\n";
  }
};

/// The result of the command line: where to write, or a text to print
/// (--help, --version) or an error, and the exit code.
struct Arguments {
  std::string out = "cluster-calibrated.json";
  std::string message;
  int exitCode = -1; ///< -1: go on
};

Arguments parseArguments(int argc, char **argv) {
  Arguments a;
  CLI::App app{"Measures this machine (MPI ranks, BLAS, memory) as a cluster "
               "file for\n`lina-run --backend sim` (docs/COST_MODEL.md).",
               "lina-calibrate"};
  app.add_option("-o,--output", a.out,
                 "the cluster file to write (default "
                 "cluster-calibrated.json)")
      ->type_name("FILE");
  app.formatter(std::make_shared<Formatter>());
  app.get_formatter()->column_width(20);
  app.set_help_flag("-h,--help", "print this help and exit");
  app.set_version_flag("--version",
                       std::string("lina-calibrate ") + LINA_VERSION,
                       "print the version and exit");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp &) {
    a.message = app.help();
    a.exitCode = 0;
  } catch (const CLI::CallForVersion &e) {
    a.message = std::string(e.what()) + "\n";
    a.exitCode = 0;
  } catch (const CLI::ParseError &e) {
    a.message = "lina-calibrate: error: " + std::string(e.what()) + "\n" +
                kUsage + "\n";
    a.exitCode = 2;
  }
  return a;
}

double now() {
  return std::chrono::duration<double>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

/// Median of `reps` timings of `fn`, all ranks synchronised before each.
template <typename Fn> double timeIt(int reps, Fn fn) {
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    MPI_Barrier(MPI_COMM_WORLD);
    double s = now();
    fn();
    double e = now() - s;
    MPI_Allreduce(MPI_IN_PLACE, &e, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    t.push_back(e);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}
} // namespace

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int rank, size;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  Arguments args = parseArguments(argc, argv);
  if (args.exitCode >= 0) {
    if (rank == 0)
      std::fputs(args.message.c_str(), args.exitCode ? stderr : stdout);
    MPI_Finalize();
    return args.exitCode;
  }
  const std::string &out = args.out;
  if (size < 2) {
    if (rank == 0)
      std::fprintf(stderr, "lina-calibrate: error: run it with at least 2 "
                           "ranks (mpirun -np R), as the plans will run\n");
    MPI_Finalize();
    return 2;
  }
  openblas_set_num_threads(1);
  // A file size limit makes the write fail with EFBIG, reported as an error.
  std::signal(SIGXFSZ, SIG_IGN);

  // Compute: sgemm on every rank at once.
  const int n = 1024;
  std::vector<float> a(n * n, 0.5f), b(n * n, 0.25f), c(n * n);
  auto gemm = [&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f,
                a.data(), n, b.data(), n, 0.0f, c.data(), n);
  };
  gemm();
  double tGemm = timeIt(5, gemm);
  double flops = 2.0 * n * n * n / tGemm;

  // Memory bandwidth: a large copy (read + write).
  std::vector<char> src(64 << 20, 1), dst(64 << 20);
  double tCopy =
      timeIt(5, [&] { std::memcpy(dst.data(), src.data(), src.size()); });
  double memBw = 2.0 * src.size() / tCopy;

  // Link latency: tiny all-to-alls; bandwidth: large ones. The cost model
  // of a pairwise all-to-all is (n-1)/n * B / bw + (n-1) * latency.
  auto alltoall = [&](size_t bytesPerRank) {
    std::vector<char> s(bytesPerRank, 1), r(bytesPerRank);
    size_t piece = bytesPerRank / size;
    return timeIt(9, [&] {
      MPI_Alltoall(s.data(), static_cast<int>(piece), MPI_BYTE, r.data(),
                   static_cast<int>(piece), MPI_BYTE, MPI_COMM_WORLD);
    });
  };
  double tSmall = alltoall(static_cast<size_t>(size) * 8);
  double latency = tSmall / (size - 1);
  size_t big = 32u << 20;
  double tBig = alltoall(big);
  double bandwidth = (size - 1.0) / size * big / std::max(1e-9, tBig - tSmall);

  int rc = 0;
  if (rank == 0) {
    std::ostringstream f;
    f << "{\n"
      << "  \"name\": \"calibrated-" << size << "-ranks\",\n"
      << "  \"description\": \"Measured by lina-calibrate with " << size
      << " MPI ranks on one machine; each rank is one 'GPU'.\",\n"
      << "  \"nodes\": 1,\n"
      << "  \"gpus_per_node\": " << size << ",\n"
      << "  \"intra_node\": { \"bandwidth_gbps\": " << bandwidth * 8 / 1e9
      << ", \"latency_us\": " << latency * 1e6 << " },\n"
      << "  \"inter_node\": { \"bandwidth_gbps\": " << bandwidth * 8 / 1e9
      << ", \"latency_us\": " << latency * 1e6 << " },\n"
      << "  \"gpu\": { \"model\": \"cpu rank\", \"flops\": " << flops
      << ", \"memory_bandwidth_gbps\": " << memBw * 8 / 1e9 << " },\n"
      << "  \"launch_latency_us\": 1\n"
      << "}\n";
    try {
      // Atomic: a failed write leaves an existing cluster file untouched.
      lina::rt::writeOutputFile(out, f.str(), "cluster file");
      std::printf("lina-calibrate: %d ranks: sgemm %.1f GFLOP/s per rank, "
                  "memory %.1f GB/s per rank, MPI all-to-all %.2f GB/s per "
                  "rank, latency %.1f us -> %s\n",
                  size, flops / 1e9, memBw / 1e9, bandwidth / 1e9,
                  latency * 1e6, out.c_str());
    } catch (const lina::rt::OutputError &e) {
      std::fprintf(stderr, "lina-calibrate: error: %s\n", e.what());
      std::fflush(stderr);
      rc = 1;
    }
  }
  MPI_Finalize();
  return rc;
}
