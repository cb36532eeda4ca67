//===- Passes.td - Lina transformation passes --------------*- tablegen -*-===//

#ifndef LINA_DIALECT_LINA_TRANSFORMS_PASSES_TD
#define LINA_DIALECT_LINA_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

def LinaPartitionAllReducePass
    : Pass<"lina-partition-allreduce", "::mlir::func::FuncOp"> {
  let summary = "Splits gradient all_reduce ops into fixed-size partitions";
  let description = [{
    Every `lina.all_reduce` over a tensor of B bytes becomes ceil(B / N)
    all_reduce ops over contiguous slices of the flattened tensor, each at
    most N bytes, reassembled exactly with `tensor.concat`. Each partition
    carries `#lina.partition<index, count, offset, original>`. Tensors of at
    most N bytes are left alone. Equal-size partitions bound how long a
    started low-priority collective can delay an all_to_all.

    `partition-bytes=auto` takes N from the cost model for the op's group
    size on the cluster given by `cluster=FILE` (or the built-in a100-ib100
    cluster). The cluster file is read once, when the pass is initialized.
  }];
  let options = [
    Option<"partitionBytes", "partition-bytes", "::mlir::lina::SizeOption",
           "::mlir::lina::SizeOption(31457280)",
           "Largest partition in bytes (a positive integer, default 30 MiB), or 'auto'">,
    Option<"clusterFile", "cluster", "std::string", "\"\"",
           "Cluster description (JSON) used by partition-bytes=auto">,
    Option<"report", "report", "bool", "false",
           "Emit a remark with this pass's counters on each function (the "
           "-mlir-pass-statistics counters need an LLVM built with statistics)">
  ];
  let statistics = [
    Statistic<"numSplit", "all-reduce-split", "all_reduce ops split">,
    Statistic<"numPartitions", "partitions-made", "Partitions created">
  ];
  let dependentDialects = ["::mlir::tensor::TensorDialect"];
}

def LinaOverlapMicrobatchesPass
    : Pass<"lina-overlap-microbatches", "::mlir::func::FuncOp"> {
  let summary = "Interleaves micro-batches so that all_to_all overlaps compute";
  let description = [{
    Splits the step's tokens into `microbatches` = M micro-batches and
    interleaves their computations at every `lina.all_to_all`: each
    micro-batch's ops are cut into segments ending with an all_to_all, and
    the segments are issued round-robin (segment i of micro-batch 0, 1, ...,
    M-1, then segment i + 1), so that one micro-batch's all_to_all is in
    flight while the next one computes (the two-micro-batch overlap of
    DualPipe and of two-batch-overlap inference, decided by the compiler).

    Token arguments (read as tokens by a lina op, or added to a token value)
    are sliced along dimension 0 with `tensor.extract_slice`; every op that
    reads a token value is cloned per micro-batch with its result types
    recomputed (the gate's capacity is per micro-batch); token results are
    reassembled with `tensor.concat`; weight gradients (dense_grad and
    gate_grad result 1, expert_ffn_grad results 1 and 2) are summed with
    `arith.addf` before their first use; ops that read no token value (the
    gradient all_reduce ops) are kept once, issued as soon as their
    operands exist. When no expert overflows its per-micro-batch capacity,
    the results equal the unsplit step's up to floating-point
    reassociation of the weight gradients.

    Runs before --lina-partition-allreduce and --lina-pipeline-experts.
    `microbatches=1` leaves the function alone. The number of tokens must
    be a multiple of M; ops outside the lina dialect that read token values
    (other than arith.addf) are rejected.
  }];
  let options = [
    Option<"microbatches", "microbatches", "int64_t", "2",
           "Number of micro-batches (a positive integer dividing the tokens; "
           "1: no split)">
  ];
  let statistics = [
    Statistic<"numCloned", "ops-cloned", "Per-micro-batch copies of ops made">
  ];
  let dependentDialects = ["::mlir::tensor::TensorDialect",
                           "::mlir::arith::ArithDialect"];
}

def LinaSplitExpertGradPass
    : Pass<"lina-split-expert-grad", "::mlir::func::FuncOp"> {
  let summary = "Splits lina.expert_ffn_grad into its input and weight "
                "gradients, so the input gradient leaves first";
  let description = [{
    Replaces every `lina.expert_ffn_grad` by `lina.expert_ffn_grad_input`
    (the recomputed activation, the gradient before the activation and the
    input gradient: three GEMMs per expert) at its place, and
    `lina.expert_ffn_grad_weight` (the two weight-gradient GEMMs) where the
    compute stream would otherwise wait for the network: before the first
    later op that reads the result of a `lina.all_to_all` placed after the
    input half, or before the first use of a weight gradient if that comes
    first (right after the input half when neither is found within 1024
    ops). The all_to_all that returns the input gradient then starts after
    three of the five GEMMs, and the weight GEMMs run while it is in flight
    (the B/W split of zero-bubble pipeline schedules and DualPipe).

    With `separate-weight-grads=true` (the default) the weight half is two
    `lina.expert_weight_grad` ops, one per weight matrix: the one whose
    gradient is used first goes at the weight half's place, the other right
    before its own first use in the block. The all_reduce of the first
    gradient then starts while the second's GEMM runs; with interleaved
    micro-batches the first gradients of all micro-batches come before the
    second ones, so the first gradient's all_reduce starts one GEMM per
    micro-batch earlier. `separate-weight-grads=false` emits one
    `lina.expert_ffn_grad_weight`.

    The ops compute what expert_ffn_grad computes, in the same order, so
    the results are bitwise those of the unsplit op. They keep the op's
    `chunk`. Runs after --lina-overlap-microbatches and
    --lina-pipeline-experts (which know only the unsplit op).
  }];
  let options = [
    Option<"separateWeightGrads", "separate-weight-grads", "bool", "true",
           "Emit the two weight gradients as separate "
           "lina.expert_weight_grad ops (false: one "
           "lina.expert_ffn_grad_weight)">,
    Option<"report", "report", "bool", "false",
           "Emit a remark with this pass's counters on each function">
  ];
  let statistics = [
    Statistic<"numSplit", "expert-grads-split", "expert_ffn_grad ops split">,
    Statistic<"numDeferred", "weight-grads-deferred",
              "Weight halves placed after an all_to_all">,
    Statistic<"numSunk", "weight-grads-sunk",
              "Second weight gradients placed before their first use">
  ];
}

def LinaPrioritizeAllToAllPass
    : Pass<"lina-prioritize-alltoall", "::mlir::func::FuncOp"> {
  let summary = "Gives all_to_all priority over all_reduce partitions";
  let description = [{
    Every `lina.all_to_all` gets `#lina.priority<high>` and every
    `lina.all_reduce` `#lina.priority<low>`. Low-priority all_reduce ops
    placed between the producer of an all_to_all's input and that
    all_to_all are moved after it, so that program order never issues a
    partition right before a dependent all_to_all. The compute ops whose
    results feed a high-priority all_to_all get the unit attribute
    `lina.hold_low`: while one runs, the runtime starts no low-priority
    collective. Idempotent.

    The move is one forward scan per block (linear time). Only
    memory-effect-free ops move; an op with side effects that reads a
    result that would move keeps it in place, so calls and other effects
    keep their order.

    `mode=ds` only sets the priorities (the DeepSpeed-like baseline),
    `mode=serial` sets every collective to normal priority and removes
    `lina.hold_low` marks (the single-queue baseline).
  }];
  let options = [
    Option<"mode", "mode", "::mlir::lina::ScheduleMode",
           "::mlir::lina::ScheduleMode::Lina",
           "lina: priorities, moves and hold_low marks; ds: priorities only "
           "(the DeepSpeed-like baseline: every all_reduce issued where it "
           "is, on the low queue); serial: every collective normal priority "
           "(one queue in program order) and no hold_low marks",
           [{::llvm::cl::values(
               clEnumValN(::mlir::lina::ScheduleMode::Lina, "lina", "Lina's schedule"),
               clEnumValN(::mlir::lina::ScheduleMode::Ds, "ds", "DeepSpeed-like baseline"),
               clEnumValN(::mlir::lina::ScheduleMode::Serial, "serial", "one queue"))}]>,
    Option<"report", "report", "bool", "false",
           "Emit a remark with this pass's counters on each function (the "
           "-mlir-pass-statistics counters need an LLVM built with statistics)">
  ];
  let statistics = [
    Statistic<"numHigh", "high-priority", "Collectives given high priority">,
    Statistic<"numLow", "low-priority", "Collectives given low priority">,
    Statistic<"numHold", "hold-low-marks", "Compute ops marked lina.hold_low">,
    Statistic<"numMoved", "ops-moved", "all_reduce ops moved after an all_to_all">
  ];
  let dependentDialects = ["::mlir::lina::LinaDialect"];
}

def LinaBucketAllReducePass
    : Pass<"lina-bucket-allreduce", "::mlir::func::FuncOp"> {
  let summary = "Merges gradient all_reduce ops into DDP-style buckets";
  let description = [{
    The gradient buckets of the DeepSpeed-like / PyTorch DDP baseline:
    consecutive `lina.all_reduce` ops of a block, in program order (the
    backward pass yields gradients in reverse layer order), are gathered
    until a bucket holds at least `bucket-bytes` bytes; each bucket becomes
    one all_reduce of the `tensor.concat` of its flattened gradients, placed
    where its last gradient is ready and split back exactly with
    `tensor.extract_slice`. A bucket closes early when the next all_reduce
    has another group, reduction, element type or priority, is a partition,
    or when a result of the bucket is used before it. The bucket op carries
    `lina.bucket = N` (the number of gradients merged).
  }];
  let options = [
    Option<"bucketBytes", "bucket-bytes", "int64_t", "26214400",
           "Bytes per bucket (a positive integer; default 25 MiB as in DDP)">,
    Option<"report", "report", "bool", "false",
           "Emit a remark with this pass's counters on each function">
  ];
  let statistics = [
    Statistic<"numBuckets", "buckets", "Buckets made">,
    Statistic<"numMerged", "all-reduce-merged", "all_reduce ops merged into buckets">
  ];
  let dependentDialects = ["::mlir::tensor::TensorDialect"];
}

def LinaPipelineExpertsPass
    : Pass<"lina-pipeline-experts", "::mlir::func::FuncOp"> {
  let summary = "Pipelines all_to_all with the expert FFNs in micro-chunks";
  let description = [{
    Each chain `all_to_all(split_axis = 0, concat_axis = 1) -> expert_ffn ->
    all_to_all(split_axis = 1, concat_axis = 0)` is split into K
    micro-chunks along the capacity (token) dimension of the
    `[experts, capacity, hidden]` buffer and interleaved so that chunk i's
    FFN runs while chunk i+1 is in flight. The result is exactly the
    unchunked one: the FFN is applied row by row. Backward chains
    (`all_to_all -> expert_ffn_grad -> all_to_all`) are split the same way;
    their weight gradients are the `arith.addf` sums of the chunks'.

    `chunks=auto` asks the cost model (on `cluster=FILE` or the built-in
    a100-ib100 cluster) for K and for the number of experts per device that
    balances FFN and all-to-all pieces; the latter is recorded on the
    function as `lina.suggested_experts_per_device`. The cluster file is
    read once, when the pass is initialized.
  }];
  let options = [
    Option<"chunks", "chunks", "::mlir::lina::SizeOption",
           "::mlir::lina::SizeOption(2)",
           "Number of micro-chunks (a positive integer, at most the capacity), "
           "or 'auto'">,
    Option<"clusterFile", "cluster", "std::string", "\"\"",
           "Cluster description (JSON) used by chunks=auto">,
    Option<"report", "report", "bool", "false",
           "Emit a remark with this pass's counters on each function (the "
           "-mlir-pass-statistics counters need an LLVM built with statistics)">
  ];
  let statistics = [
    Statistic<"numChains", "chains-pipelined", "all_to_all/expert chains split">,
    Statistic<"numChunks", "chunks-made", "Micro-chunks created">
  ];
  let dependentDialects = ["::mlir::tensor::TensorDialect",
                           "::mlir::arith::ArithDialect"];
}

def LinaBuildPlacementPass
    : Pass<"lina-build-placement", "::mlir::func::FuncOp"> {
  let summary = "Attaches expert placement tables built from a routing profile";
  let description = [{
    For each MoE layer (each `lina.gate`, in program order, matched with the
    profile's layers 0, 1, ...) builds a placement of the layer's experts
    on `devices` devices with `experts-per-device` expert slots each from
    the experts' popularity in the profile (written by `lina-profile`):
    popular experts are replicated in proportion to their load, unpopular
    ones packed together, and the device loads balanced; a layer where this
    would not beat expert parallelism keeps the static placement (expert e
    on device e / ceil(E / devices)). The table is attached to the gate as
    `lina.placement = #lina.placement<...>` and carried into the plan by
    `lina-translate --lina-to-plan`. Skewed expert popularity otherwise
    makes the devices that host popular experts the stragglers of every
    batch.

    The profile must match the model: as many layers as the function has
    gates, and each gate's `num_experts` and `top_k`. It is read once, when
    the pass is initialized.
  }];
  let options = [
    Option<"profileFile", "profile", "std::string", "\"\"",
           "Routing profile (JSON from lina-profile); required">,
    Option<"devices", "devices", "int64_t", "0",
           "Number of devices of the expert-parallel group (a positive "
           "integer); required (0: not given)">,
    Option<"expertsPerDevice", "experts-per-device", "int64_t", "0",
           "Expert slots per device (a positive integer, devices x slots >= "
           "experts); 0 (the default): ceil(experts / devices), i.e. no room "
           "for replicas">,
    Option<"report", "report", "bool", "false",
           "Emit a remark on each gate with its placement's balance">
  ];
  let statistics = [
    Statistic<"numLayers", "layers-placed", "Gates given a placement table">,
    Statistic<"numStatic", "static-layers",
              "Layers that kept the static placement">,
    Statistic<"numReplicas", "replicas", "Expert replicas placed">
  ];
}

#endif // LINA_DIALECT_LINA_TRANSFORMS_PASSES_TD
