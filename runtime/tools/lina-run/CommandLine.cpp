//===- CommandLine.cpp - lina-run's options -------------------------------===//
//
// Part of the Lina project.
//
//===----------------------------------------------------------------------===//

#include "CommandLine.h"

#include "lina/rt/Scheduler.h"

#include <CLI/CLI.hpp>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <optional>

#ifndef LINA_VERSION
#define LINA_VERSION "0.1.0"
#endif

using namespace lina::rt;
using namespace lina::rt::run;

const char *run::toolVersion() { return LINA_VERSION; }

std::vector<std::string> run::availableBackends() {
#ifdef LINA_HAVE_CUDA
  return {"cpu", "sim", "cuda"};
#else
  return {"cpu", "sim"};
#endif
}

bool run::backendAvailable(const std::string &name) {
  for (const std::string &b : availableBackends())
    if (b == name)
      return true;
  return false;
}

namespace {

const char *kUsage =
    "usage: lina-run PLAN [options]\n"
    "       lina-run PLAN --mode infer --requests N --batch B --routing FILE "
    "...\n";

/// The line that follows every usage error.
const char *kUsageHint =
    "usage: lina-run PLAN [options]   (lina-run --help lists them)";

const char *kCommon = "Options of both modes";
const char *kTrain = "Training (--mode train, the default)";
const char *kSim = "Simulator (--backend sim)";
const char *kInfer = "Inference (--mode infer, docs/INFERENCE.md)";

/// Counts (steps, batches, requests) are ints; far below INT_MAX.
constexpr int64_t kMaxCount = int64_t(1) << 30;

std::string join(const std::vector<std::string> &items) {
  std::string out;
  for (const std::string &s : items)
    out += (out.empty() ? "" : ", ") + s;
  return out;
}

std::string notAvailable() {
  return "is not available in this build (available: " +
         join(availableBackends()) + ")";
}

[[noreturn]] void invalid(const std::string &flag, const std::string &value,
                          const std::string &expected) {
  throw CLI::ValidationError("invalid value '" + value + "' for " + flag +
                             " (" + expected + ")");
}

int64_t parseInteger(const std::string &flag, const std::string &v, int64_t min,
                     int64_t max) {
  errno = 0;
  char *end = nullptr;
  long long x = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || *end || errno == ERANGE || x < min)
    invalid(flag, v, "an integer >= " + std::to_string(min));
  if (x > max)
    invalid(flag, v,
            "an integer from " + std::to_string(min) + " to " +
                std::to_string(max));
  return x;
}

double parseNumber(const std::string &flag, const std::string &v, bool zeroOk) {
  char *end = nullptr;
  double x = std::strtod(v.c_str(), &end);
  if (v.empty() || *end || !std::isfinite(x) || x < 0 || (!zeroOk && x == 0))
    invalid(flag, v, zeroOk ? "a non-negative number" : "a positive number");
  return x;
}

/// The help's usage line, instead of CLI11's generated one.
class Formatter : public CLI::Formatter {
public:
  std::string make_usage(const CLI::App *, std::string) const override {
    return kUsage;
  }
};

/// lina-run's options on one CLI11 App. Values are converted by the
/// options' callbacks, after the whole command line was read.
class Parser {
public:
  Parser();
  CommandLine parse(int argc, const char *const *argv);

private:
  using IntSetter = std::function<void(int64_t)>;
  using NumberSetter = std::function<void(double)>;

  CLI::Option *text(const std::string &name, std::string &target,
                    const std::string &type, const std::string &help,
                    const char *group);
  CLI::Option *integer(const std::string &name, int64_t min, int64_t max,
                       IntSetter set, const std::string &help,
                       const char *group);
  CLI::Option *number(const std::string &name, bool zeroOk, NumberSetter set,
                      const std::string &help, const char *group);
  CLI::Option *flag(const std::string &name, std::function<void()> set,
                    const std::string &help, const char *group);
  void checkModes() const;
  void finishTrain();
  void finishInfer();

  CLI::App app{"Executes a Lina plan: training steps, or with --mode infer\n"
               "batches of requests with per-batch expert placement\n"
               "(docs/RUNTIME.md, docs/INFERENCE.md).",
               "lina-run"};
  CommandLine cl;
  std::string mode = "train", placement;
  std::optional<int64_t> warmup;
  /// The options of one mode only, to reject them in the other.
  std::vector<CLI::Option *> trainOnly, inferOnly;
  CLI::Option *requests = nullptr, *batch = nullptr, *backend = nullptr;
};

CLI::Option *Parser::text(const std::string &name, std::string &target,
                          const std::string &type, const std::string &help,
                          const char *group) {
  return app.add_option(name, target, help)->type_name(type)->group(group);
}

CLI::Option *Parser::integer(const std::string &name, int64_t min, int64_t max,
                             IntSetter set, const std::string &help,
                             const char *group) {
  return app
      .add_option_function<std::string>(
          name,
          [name, min, max, set](const std::string &v) {
            set(parseInteger(name, v, min, max));
          },
          help)
      ->type_name("N")
      ->group(group);
}

CLI::Option *Parser::number(const std::string &name, bool zeroOk,
                            NumberSetter set, const std::string &help,
                            const char *group) {
  return app
      .add_option_function<std::string>(
          name,
          [name, zeroOk, set](const std::string &v) {
            set(parseNumber(name, v, zeroOk));
          },
          help)
      ->type_name("X")
      ->group(group);
}

CLI::Option *Parser::flag(const std::string &name, std::function<void()> set,
                          const std::string &help, const char *group) {
  return app
      .add_flag_function(
          name,
          [set](int64_t count) {
            if (count > 0)
              set();
          },
          help)
      ->group(group);
}

Parser::Parser() {
  TrainOptions &t = cl.train;
  infer::InferOptions &in = cl.infer;
  app.formatter(std::make_shared<Formatter>());
  app.get_formatter()->column_width(26);
  app.allow_extras(); // reported below as "unknown option"
  // A repeated option takes its last value, as it always did.
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.set_help_flag("-h,--help", "print this help and exit")->group(kCommon);
  app.set_version_flag("--version", std::string("lina-run ") + toolVersion(),
                       "print the version and exit")
      ->group(kCommon);
  app.footer("Launch with `mpirun -np R lina-run ...`, R the plan's world "
             "size; the sim\nbackend runs in one process.");

  app.add_option("PLAN", t.plan, "the plan (JSON, docs/PLAN_FORMAT.md)")
      ->type_name("");

  // Both modes.
  app.add_option_function<std::string>(
         "--mode",
         [this](const std::string &v) {
           if (v != "train" && v != "infer")
             throw CLI::ValidationError("unknown mode '" + v +
                                        "' (train, or infer: see "
                                        "docs/INFERENCE.md)");
           mode = v;
         },
         "train (default), or infer: serve requests with\n"
         "per-batch expert placement")
      ->type_name("MODE")
      ->group(kCommon);
  std::string backends = "cpu (default): MPI ranks on the CPU; sim: one\n"
                         "process simulates every rank on --cluster; cuda:\n"
                         "NVIDIA GPUs and NCCL. In this build: " +
                         join(availableBackends()) +
                         ".\n--mode infer: cpu or sim";
  backend = text("--backend", t.backend, "NAME", backends, kCommon);
  text("--json", cl.json, "FILE",
       "write the results as JSON: step or batch times,\n"
       "percentiles, bytes, placement, the command line and\n"
       "versions (docs/RUNTIME.md)",
       kCommon);
  integer(
      "--warmup", 0, kMaxCount, [this](int64_t v) { warmup = v; },
      "untimed steps first (default 2); --mode infer:\n"
      "untimed batches first (default 1)",
      kCommon);
  integer(
      "--seed", 0, INT64_MAX,
      [&t, &in](int64_t v) { t.seed = in.seed = static_cast<uint64_t>(v); },
      "seed of the inputs and weights (default 1)", kCommon);
  number(
      "--timeout", false, [&t, &in](double v) { t.timeout = in.timeout = v; },
      "watchdog for a collective, in seconds (default 120)", kCommon);
  flag(
      "--check", [&t, &in] { t.check = in.check = true; },
      "compare the outputs with a baseline run (see\n"
      "--baseline; --mode infer: the static placement)",
      kCommon);
  number(
      "--tolerance", false,
      [&t, &in](double v) { t.tolerance = in.tolerance = v; },
      "--check relative tolerance (default 1e-4; absolute\n"
      "1e-5)",
      kCommon);
  flag(
      "--quiet", [&t, &in] { t.quiet = in.quiet = true; }, "only the summary",
      kCommon);

  // Training only.
  // Both modes (--backend sim).
  text("--cluster", t.cluster, "FILE",
       "the cluster to simulate (JSON, docs/COST_MODEL.md)", kSim);
  trainOnly = {
      integer(
          "--steps", 1, kMaxCount,
          [&t](int64_t v) { t.steps = static_cast<int>(v); },
          "timed steps (default 10)", kTrain),
      text("--policy", t.policy, "lina|fifo",
           "collective issue policy (default lina)", kTrain),
      integer(
          "--credit-bytes", 0, INT64_MAX,
          [&t](int64_t v) { t.creditBytes = v; },
          "lina: cap on low-priority bytes in flight (0: none)", kTrain),
      text("--trace", t.trace, "FILE",
           "write a Chrome-trace/Perfetto timeline of the last\n"
           "step",
           kTrain),
      text("--baseline", t.baseline, "PLAN2",
           "baseline for --check (default: this plan, fifo policy)", kTrain),
      text("--baseline-backend", t.baselineBackend, "NAME",
           "backend of the --check baseline (default: --backend)", kTrain),
      flag(
          "--no-pin-routing", [&t] { t.pinRouting = false; },
          "--check: let each run route on its own (by default the\n"
          "checked run takes the baseline's expert choices)",
          kTrain),
      flag(
          "--dump", [&t] { t.dump = true; },
          "print the plan as a table and exit", kTrain),
      flag(
          "--bound", [&t] { t.bound = true; },
          "print a provable lower bound on the step time", kSim),
      flag(
          "--link-priority", [&t] { t.linkPriority = true; },
          "strict all_to_all priority on every link\n"
          "(experiment)",
          kSim),
      flag(
          "--contention-free",
          [&t] {
            std::fprintf(stderr, "lina-run: --contention-free is now --bound "
                                 "(a provable lower bound on the step)\n");
            t.bound = true;
          },
          "old name of --bound (it now prints the bound)", kSim),
  };

  // Inference only.
  requests = integer(
      "--requests", 1, kMaxCount,
      [&in](int64_t v) { in.requests = static_cast<int>(v); },
      "requests to serve (from the trace, in order;\n"
      "required)",
      kInfer);
  batch = integer(
      "--batch", 1, kMaxCount,
      [&in](int64_t v) { in.batch = static_cast<int>(v); },
      "requests per batch (required)", kInfer);
  inferOnly = {
      requests,
      batch,
      text("--routing", in.routing, "FILE",
           "routing trace (JSONL) that routes the tokens\n"
           "(required)",
           kInfer),
      text("--profile", in.profile, "FILE",
           "routing profile for lina's phase-1 estimate", kInfer),
      app.add_option_function<std::string>(
             "--placement",
             [&in](const std::string &p) {
               if (p == "static")
                 in.placement = infer::PlacementMode::Static;
               else if (p == "eplb")
                 in.placement = infer::PlacementMode::Eplb;
               else if (p == "lina")
                 in.placement = infer::PlacementMode::Lina;
               else if (p == "oracle")
                 in.placement = infer::PlacementMode::Oracle;
               else
                 throw CLI::ValidationError("unknown placement '" + p +
                                            "' (static, eplb, lina or oracle)");
             },
             "expert placement (default lina)")
          ->type_name("static|eplb|lina|oracle")
          ->group(kInfer),
      number(
          "--phase2-threshold", true,
          [&in](double v) { in.phase2Threshold = v; },
          "lina: re-balance when the measured max device\n"
          "load deviates from the estimate by more than X\n"
          "(default 0.2)",
          kInfer),
      integer(
          "--experts-per-device", 1, kMaxCount,
          [&in](int64_t v) { in.slotsPerDevice = static_cast<int>(v); },
          "expert slots per device (default: the plan's\n"
          "table, else twice the local experts)",
          kInfer),
  };
}

/// Options of the other mode are errors naming them.
void Parser::checkModes() const {
  bool infer = mode == "infer";
  for (const CLI::Option *opt : infer ? trainOnly : inferOnly)
    if (opt->count() > 0)
      throw UsageError(opt->get_name() + " is an option of --mode " +
                       (infer ? "train" : "infer") + "\n" + kUsageHint);
}

void Parser::finishTrain() {
  TrainOptions &o = cl.train;
  auto usage = [](const std::string &msg) -> UsageError {
    return UsageError(msg + "\n" + kUsageHint);
  };
  o.warmup = static_cast<int>(warmup.value_or(2));
  if (o.plan.empty())
    throw usage("no plan given");
  if (o.dump && !cl.json.empty())
    throw usage("--dump prints the plan and runs nothing: no results for "
                "--json");
  if (o.baselineBackend.empty())
    o.baselineBackend = o.backend;
  if (o.backend == "sim") {
    if (o.cluster.empty())
      throw usage("--backend sim needs --cluster FILE (see examples/clusters)");
    if (o.check)
      throw usage("--check compares numerics; the sim backend computes none");
  } else if (!o.cluster.empty() || o.bound || o.linkPriority) {
    throw usage("--cluster, --bound and --link-priority are options of "
                "--backend sim");
  }
  if (!backendAvailable(o.backend))
    throw usage("backend '" + o.backend + "' " + notAvailable());
  parsePolicy(o.policy);
  if (!o.baseline.empty() && !o.check)
    throw usage("--baseline needs --check");
  if (o.baselineBackend != o.backend && !o.check)
    throw usage("--baseline-backend needs --check");
  if (o.check && !backendAvailable(o.baselineBackend))
    throw usage("backend '" + o.baselineBackend + "' " + notAvailable());
  if (o.check && o.baselineBackend == "sim")
    throw usage("--baseline-backend sim: the sim backend computes no numerics "
                "to --check against");
}

void Parser::finishInfer() {
  infer::InferOptions &o = cl.infer;
  auto usage = [](const std::string &msg) -> UsageError {
    return UsageError(msg + "\n" + kUsageHint);
  };
  o.plan = cl.train.plan;
  o.warmup = static_cast<int>(warmup.value_or(1));
  o.cluster = cl.train.cluster;
  if (cl.train.backend == "sim") {
    if (o.cluster.empty())
      throw usage("--backend sim needs --cluster FILE (see examples/clusters)");
    if (o.check)
      throw usage("--check compares numerics; the sim backend computes none");
  } else if (cl.train.backend != "cpu") {
    throw usage("--mode infer runs on the cpu or the sim backend");
  } else if (!o.cluster.empty()) {
    throw usage("--cluster is an option of --backend sim");
  }
  if (o.plan.empty())
    throw usage("no plan given");
  if (requests->count() == 0 || batch->count() == 0 || o.routing.empty())
    throw usage("--mode infer needs --requests, --batch and --routing");
}

CommandLine Parser::parse(int argc, const char *const *argv) {
  cl.args.assign(argv, argv + argc);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp &) {
    cl.info = app.help();
    if (cl.info.back() != '\n')
      cl.info += '\n';
    return cl;
  } catch (const CLI::CallForVersion &e) {
    cl.info = std::string(e.what()) + "\n";
    return cl;
  } catch (const CLI::ArgumentMismatch &e) {
    // "--steps: 1 required N missing": the option's value is missing.
    std::string msg = e.what();
    const std::string missing = " missing";
    size_t colon = msg.find(": ");
    if (colon != std::string::npos && msg.size() > missing.size() &&
        msg.compare(msg.size() - missing.size(), missing.size(), missing) == 0)
      msg = "missing value for " + msg.substr(0, colon);
    throw UsageError(msg + "\n" + kUsageHint);
  } catch (const CLI::ParseError &e) {
    throw UsageError(std::string(e.what()) + "\n" + kUsageHint);
  }
  // Unknown options first, then a second plan.
  std::vector<std::string> extra = app.remaining();
  for (const std::string &a : extra)
    if (a.size() > 1 && a[0] == '-')
      throw UsageError("unknown option '" + a.substr(0, a.find('=')) + "'\n" +
                       kUsageHint);
  if (!extra.empty())
    throw UsageError("more than one plan given ('" + cl.train.plan + "' and '" +
                     extra.front() + "')\n" + kUsageHint);
  checkModes();
  if (mode == "infer") {
    cl.mode = Mode::Infer;
    finishInfer();
  } else {
    finishTrain();
  }
  return cl;
}

} // namespace

CommandLine run::parseCommandLine(int argc, const char *const *argv) {
  return Parser().parse(argc, argv);
}
