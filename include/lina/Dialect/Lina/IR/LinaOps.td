//===- LinaOps.td - Lina operations ------------------------*- tablegen -*-===//

#ifndef LINA_DIALECT_LINA_IR_LINAOPS_TD
#define LINA_DIALECT_LINA_IR_LINAOPS_TD

include "lina/Dialect/Lina/IR/LinaDialect.td"
include "lina/Dialect/Lina/IR/LinaAttrs.td"
include "mlir/IR/CommonAttrConstraints.td"
include "mlir/IR/CommonTypeConstraints.td"
include "mlir/IR/SymbolInterfaces.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

def Lina_Tensor : StaticShapeTensorOf<[AnyFloat]>;
def Lina_CommTensor : StaticShapeTensorOf<[AnyFloat, I32, I64]>;
def Lina_IndexTensor : StaticShapeTensorOf<[I32, I64]>;
def Lina_CountTensor : 1DTensorOf<[I64]>;
def Lina_PositiveI64 : ConfinedAttr<I64Attr, [IntPositive]>;
def Lina_NonNegI64 : ConfinedAttr<I64Attr, [IntNonNegative]>;
def Lina_FloatPositive : AttrConstraint<
    CPred<"::std::isfinite(::llvm::cast<::mlir::FloatAttr>($_self).getValueAsDouble()) && "
          "::llvm::cast<::mlir::FloatAttr>($_self).getValueAsDouble() > 0.0">,
    "whose value is finite and positive">;
def Lina_PositiveF64 : ConfinedAttr<F64Attr, [Lina_FloatPositive]>;

//===----------------------------------------------------------------------===//
// Device grid
//===----------------------------------------------------------------------===//

def Lina_GridOp : Lina_Op<"grid", [Symbol]> {
  let summary = "Declares a device grid and its named parallel groups";
  let description = [{
    A grid of `product(shape)` ranks, numbered row-major. Each named group
    spans a set of grid axes; a rank's instance of the group is the set of
    ranks that agree with it on every other axis. Expert-parallel and
    data-parallel groups may span the same axes.

    ```mlir
    lina.grid @world shape = [2, 4] groups = {dp = array<i64: 0>, ep = array<i64: 1>}
    ```
  }];
  let arguments = (ins SymbolNameAttr:$sym_name,
                       DenseI64ArrayAttr:$shape,
                       DictionaryAttr:$groups);
  let assemblyFormat = "$sym_name `shape` `=` $shape `groups` `=` $groups attr-dict";
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    /// Number of ranks in the grid; at most Limits::kMaxRanks once verified.
    int64_t getNumRanks();
    /// Grid axes spanned by group `name`, or failure if there is none.
    ::mlir::FailureOr<::llvm::ArrayRef<int64_t>> getGroupAxes(::llvm::StringRef name);
    /// Number of ranks in one instance of group `name`, or failure.
    ::mlir::FailureOr<int64_t> getGroupSize(::llvm::StringRef name);
  }];
}

class Lina_CollectiveOp<string mnemonic, list<Trait> traits = []>
    : Lina_Op<mnemonic, !listconcat(traits,
          [DeclareOpInterfaceMethods<SymbolUserOpInterface>])> {
  code collectiveClassDeclaration = [{
    /// Size of this op's group; the symbol must already be verified.
    int64_t getGroupSize();
  }];
}

//===----------------------------------------------------------------------===//
// Collectives
//===----------------------------------------------------------------------===//

def Lina_AllToAllOp : Lina_CollectiveOp<"all_to_all", [AttrSizedOperandSegments]> {
  let summary = "Exchange of tensor pieces among the ranks of a group";
  let description = [{
    Uniform form: `input` is split along `split_axis` into n equal pieces
    (n = group size); piece i goes to group rank i; the pieces received are
    concatenated along `concat_axis` in group-rank order. The result shape
    is the input's with `split_axis` divided by n and `concat_axis`
    multiplied by n. The same names as upstream's `shard.all_to_all`.

    Variable form (`counts(...)`): rows along axis 0 are sent in pieces of
    `send_counts[i]` rows to group rank i, and `recv_counts[i]` rows arrive
    from rank i. Both axes must be 0. The result's axis 0 is the capacity
    of the receive buffer; rows beyond the received total are zero. Counts
    are exchanged beforehand by a uniform all_to_all of the count tensor.

    ```mlir
    %r = lina.all_to_all %buf group = #lina.group<@world, "ep"> split_axis = 0 concat_axis = 1
        : tensor<8x32x512xf32> -> tensor<1x256x512xf32>
    %v = lina.all_to_all %rows counts(%s, %r : tensor<4xi64>, tensor<4xi64>)
        group = #lina.group<@world, "ep"> split_axis = 0 concat_axis = 0
        : tensor<64x512xf32> -> tensor<96x512xf32>
    ```
  }];
  let arguments = (ins Lina_CommTensor:$input,
                       Optional<Lina_CountTensor>:$send_counts,
                       Optional<Lina_CountTensor>:$recv_counts,
                       Lina_GroupAttr:$group,
                       Lina_NonNegI64:$split_axis,
                       Lina_NonNegI64:$concat_axis,
                       OptionalAttr<Lina_PriorityAttr>:$priority,
                       OptionalAttr<Lina_ChunkAttr>:$chunk);
  let results = (outs Lina_CommTensor:$result);
  let assemblyFormat = [{
    $input (`counts` `(` $send_counts^ `,` $recv_counts `:` type($send_counts) `,` type($recv_counts) `)`)?
    `group` `=` $group `split_axis` `=` $split_axis `concat_axis` `=` $concat_axis
    attr-dict `:` type($input) `->` type($result)
  }];
  let hasVerifier = 1;
  let extraClassDeclaration = collectiveClassDeclaration # [{
    bool isVariable() { return getSendCounts() != nullptr; }
    /// Bytes this rank sends.
    int64_t getNumBytes();
  }];
}

def Lina_AllReduceOp : Lina_CollectiveOp<"all_reduce",
    [Pure, AllTypesMatch<["input", "result"]>]> {
  let summary = "Element-wise reduction of a tensor over a group";
  let description = [{
    Every rank of the group receives the element-wise `reduction` of the
    group's inputs. `--lina-partition-allreduce` splits large all_reduce ops
    into partitions carrying `#lina.partition<...>`. The partitions of one
    tensor (the all_reduce ops reading slices of one source) must be pieces
    0..count-1, each once, that cover it without gap or overlap.

    ```mlir
    %g = lina.all_reduce %dw group = #lina.group<@world, "dp"> reduction = sum : tensor<512x512xf32>
    ```
  }];
  let arguments = (ins Lina_CommTensor:$input,
                       Lina_GroupAttr:$group,
                       Lina_ReductionAttr:$reduction,
                       OptionalAttr<Lina_PriorityAttr>:$priority,
                       OptionalAttr<Lina_PartitionAttr>:$partition);
  let results = (outs Lina_CommTensor:$result);
  let assemblyFormat = [{
    $input `group` `=` $group `reduction` `=` `` $reduction attr-dict `:` type($input)
  }];
  let hasVerifier = 1;
  let extraClassDeclaration = collectiveClassDeclaration # [{
    /// Bytes reduced (size of the input tensor).
    int64_t getNumBytes();
  }];
}

//===----------------------------------------------------------------------===//
// Forward compute
//===----------------------------------------------------------------------===//

def Lina_DenseOp : Lina_Op<"dense", [Pure]> {
  let summary = "Non-MoE compute block: y = act(x * w)";
  let description = [{
    A dense block (an attention projection or a dense FFN layer) on the
    rank's tokens: `x` is `[tokens, in]`, `w` is `[in, out]`, the result
    `[tokens, out]`.

    ```mlir
    %y = lina.dense %x, %w activation = gelu : (tensor<256x512xf32>, tensor<512x512xf32>) -> tensor<256x512xf32>
    ```
  }];
  let arguments = (ins Lina_Tensor:$input, Lina_Tensor:$weight,
                       Lina_ActivationAttr:$activation);
  let results = (outs Lina_Tensor:$result);
  let assemblyFormat = [{
    $input `,` $weight `activation` `=` `` $activation attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Lina_GateOp : Lina_Op<"gate", [Pure]> {
  let summary = "Router: softmax over experts and top-k selection";
  let description = [{
    `logits = x * w`, `p = softmax(logits)` over the `num_experts` experts;
    the results are each token's `top_k` expert ids (by descending `p`, ties
    to the lower id) and their probabilities. `capacity_factor` is the
    factor dispatch uses to size its per-expert buffers:
    `capacity = max(1, ceil(top_k * tokens / num_experts * capacity_factor))`.
    `capacity_factor` must be finite and positive, `num_experts` and the
    capacity within the limits of docs/LIMITS.md; the dispatch and combine
    buffers of the tokens this gate routes must have `num_experts` experts
    of exactly this capacity.

    ```mlir
    %ids, %w = lina.gate %x, %wg experts = 8 top_k = 2 capacity_factor = 1.25
        : (tensor<256x512xf32>, tensor<512x8xf32>) -> (tensor<256x2xi32>, tensor<256x2xf32>)
    ```
  }];
  let arguments = (ins Lina_Tensor:$input, Lina_Tensor:$weight,
                       Lina_PositiveI64:$num_experts,
                       Lina_PositiveI64:$top_k,
                       Lina_PositiveF64:$capacity_factor);
  let results = (outs Lina_IndexTensor:$expert_ids, Lina_Tensor:$gate_weights);
  let assemblyFormat = [{
    $input `,` $weight `experts` `=` $num_experts `top_k` `=` $top_k
    `capacity_factor` `=` $capacity_factor attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    /// The dispatch capacity implied by this gate: at most
    /// Limits::kMaxCapacity once verified.
    int64_t getCapacity();
  }];
}

def Lina_DispatchOp : Lina_Op<"dispatch", [Pure]> {
  let summary = "Permutes tokens into per-expert buffers of fixed capacity";
  let description = [{
    Result `[experts, capacity, hidden]`. Assignments are placed in slot
    order (for each of the k choices, for each token in order); an
    assignment beyond an expert's capacity is dropped. Unused slots are
    zero. Experts and capacity are positive and, when `expert_ids` comes
    from a `lina.gate`, equal to its `num_experts` and capacity.

    ```mlir
    %buf = lina.dispatch %x, %ids : (tensor<256x512xf32>, tensor<256x1xi32>) -> tensor<8x32x512xf32>
    ```
  }];
  let arguments = (ins Lina_Tensor:$input, Lina_IndexTensor:$expert_ids);
  let results = (outs Lina_Tensor:$result);
  let assemblyFormat = "$input `,` $expert_ids attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Lina_ExpertFfnOp : Lina_Op<"expert_ffn", [Pure]> {
  let summary = "The local experts' feed-forward networks (grouped GEMM)";
  let description = [{
    For each local expert e: `out[e] = act(in[e] * w1[e]) * w2[e]` with
    `in : [experts, rows, hidden]`, `w1 : [experts, hidden, ffn]`,
    `w2 : [experts, ffn, hidden]`.

    ```mlir
    %o = lina.expert_ffn %r, %w1, %w2 activation = gelu
        : (tensor<1x256x512xf32>, tensor<1x512x2048xf32>, tensor<1x2048x512xf32>) -> tensor<1x256x512xf32>
    ```
  }];
  let arguments = (ins Lina_Tensor:$input, Lina_Tensor:$w1, Lina_Tensor:$w2,
                       Lina_ActivationAttr:$activation,
                       OptionalAttr<Lina_ChunkAttr>:$chunk);
  let results = (outs Lina_Tensor:$result);
  let assemblyFormat = [{
    $input `,` $w1 `,` $w2 `activation` `=` `` $activation attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Lina_CombineOp : Lina_Op<"combine", [Pure]> {
  let summary = "Weighted un-permutation of expert outputs back to tokens";
  let description = [{
    `y[t] = sum_j gate_weights[t, j] * buf[expert_ids[t, j], slot]` over the
    assignments dispatch kept (same slot order).

    ```mlir
    %y = lina.combine %buf, %ids, %w : (tensor<8x32x512xf32>, tensor<256x1xi32>, tensor<256x1xf32>) -> tensor<256x512xf32>
    ```
  }];
  let arguments = (ins Lina_Tensor:$input, Lina_IndexTensor:$expert_ids,
                       Lina_Tensor:$gate_weights);
  let results = (outs Lina_Tensor:$result);
  let assemblyFormat = "$input `,` $expert_ids `,` $gate_weights attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Backward forms
//===----------------------------------------------------------------------===//

def Lina_DenseGradOp : Lina_Op<"dense_grad", [Pure]> {
  let summary = "Gradients of lina.dense with respect to its input and weight";
  let description = [{
    ```mlir
    %dx, %dw = lina.dense_grad %dy, %x, %w activation = gelu
        : (tensor<256x512xf32>, tensor<256x512xf32>, tensor<512x512xf32>) -> (tensor<256x512xf32>, tensor<512x512xf32>)
    ```
  }];
  let arguments = (ins Lina_Tensor:$grad, Lina_Tensor:$input, Lina_Tensor:$weight,
                       Lina_ActivationAttr:$activation);
  let results = (outs Lina_Tensor:$input_grad, Lina_Tensor:$weight_grad);
  let assemblyFormat = [{
    $grad `,` $input `,` $weight `activation` `=` `` $activation attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Lina_GateGradOp : Lina_Op<"gate_grad", [Pure]> {
  let summary = "Gradients of lina.gate through the selected probabilities";
  let description = [{
    From the gradient of the gate weights (`[tokens, k]`), computes the
    gradients of the gate input and of the router weight through the
    softmax.

    ```mlir
    %dx, %dwg = lina.gate_grad %dgw, %x, %wg, %ids
        : (tensor<256x1xf32>, tensor<256x512xf32>, tensor<512x8xf32>, tensor<256x1xi32>) -> (tensor<256x512xf32>, tensor<512x8xf32>)
    ```
  }];
  let arguments = (ins Lina_Tensor:$grad, Lina_Tensor:$input, Lina_Tensor:$weight,
                       Lina_IndexTensor:$expert_ids);
  let results = (outs Lina_Tensor:$input_grad, Lina_Tensor:$weight_grad);
  let assemblyFormat = [{
    $grad `,` $input `,` $weight `,` $expert_ids attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Lina_DispatchGradOp : Lina_Op<"dispatch_grad", [Pure]> {
  let summary = "Gradient of lina.dispatch: gathers buffer gradients back to tokens";
  let description = [{
    ```mlir
    %dx = lina.dispatch_grad %dbuf, %ids : (tensor<8x32x512xf32>, tensor<256x1xi32>) -> tensor<256x512xf32>
    ```
  }];
  let arguments = (ins Lina_Tensor:$grad, Lina_IndexTensor:$expert_ids);
  let results = (outs Lina_Tensor:$result);
  let assemblyFormat = "$grad `,` $expert_ids attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Lina_ExpertFfnGradOp : Lina_Op<"expert_ffn_grad", [Pure]> {
  let summary = "Gradients of lina.expert_ffn";
  let description = [{
    ```mlir
    %din, %dw1, %dw2 = lina.expert_ffn_grad %dy, %r, %w1, %w2 activation = gelu
        : (tensor<1x256x512xf32>, tensor<1x256x512xf32>, tensor<1x512x2048xf32>, tensor<1x2048x512xf32>)
        -> (tensor<1x256x512xf32>, tensor<1x512x2048xf32>, tensor<1x2048x512xf32>)
    ```
  }];
  let arguments = (ins Lina_Tensor:$grad, Lina_Tensor:$input, Lina_Tensor:$w1,
                       Lina_Tensor:$w2, Lina_ActivationAttr:$activation,
                       OptionalAttr<Lina_ChunkAttr>:$chunk);
  let results = (outs Lina_Tensor:$input_grad, Lina_Tensor:$w1_grad, Lina_Tensor:$w2_grad);
  let assemblyFormat = [{
    $grad `,` $input `,` $w1 `,` $w2 `activation` `=` `` $activation attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Lina_ExpertFfnGradInputOp : Lina_Op<"expert_ffn_grad_input", [Pure]> {
  let summary = "The input gradient of lina.expert_ffn (first half of lina.expert_ffn_grad)";
  let description = [{
    For each local expert e: `z = in[e] * w1[e]`, `act = f(z)`,
    `pre_grad = (dy[e] * w2[e]^T) . f'(z)` and
    `input_grad = pre_grad * w1[e]^T`. `act` and `pre_grad` are
    `[experts, rows, ffn]`: lina.expert_ffn_grad_weight takes them to form
    the weight gradients. The pair computes what lina.expert_ffn_grad
    computes, so that the input gradient can leave on the network before
    the weight-gradient GEMMs run (--lina-split-expert-grad).

    ```mlir
    %din, %act, %dz = lina.expert_ffn_grad_input %dy, %r, %w1, %w2 activation = gelu
        : (tensor<1x256x512xf32>, tensor<1x256x512xf32>, tensor<1x512x2048xf32>, tensor<1x2048x512xf32>)
        -> (tensor<1x256x512xf32>, tensor<1x256x2048xf32>, tensor<1x256x2048xf32>)
    ```
  }];
  let arguments = (ins Lina_Tensor:$grad, Lina_Tensor:$input, Lina_Tensor:$w1,
                       Lina_Tensor:$w2, Lina_ActivationAttr:$activation,
                       OptionalAttr<Lina_ChunkAttr>:$chunk);
  let results = (outs Lina_Tensor:$input_grad, Lina_Tensor:$act,
                      Lina_Tensor:$pre_grad);
  let assemblyFormat = [{
    $grad `,` $input `,` $w1 `,` $w2 `activation` `=` `` $activation attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Lina_ExpertFfnGradWeightOp : Lina_Op<"expert_ffn_grad_weight", [Pure]> {
  let summary = "The weight gradients of lina.expert_ffn (second half of lina.expert_ffn_grad)";
  let description = [{
    For each local expert e: `w1_grad[e] = in[e]^T * pre_grad[e]` and
    `w2_grad[e] = act[e]^T * dy[e]`, with `act` and `pre_grad` from
    lina.expert_ffn_grad_input.

    ```mlir
    %dw1, %dw2 = lina.expert_ffn_grad_weight %dy, %r, %act, %dz
        : (tensor<1x256x512xf32>, tensor<1x256x512xf32>, tensor<1x256x2048xf32>, tensor<1x256x2048xf32>)
        -> (tensor<1x512x2048xf32>, tensor<1x2048x512xf32>)
    ```
  }];
  let arguments = (ins Lina_Tensor:$grad, Lina_Tensor:$input, Lina_Tensor:$act,
                       Lina_Tensor:$pre_grad, OptionalAttr<Lina_ChunkAttr>:$chunk);
  let results = (outs Lina_Tensor:$w1_grad, Lina_Tensor:$w2_grad);
  let assemblyFormat = [{
    $grad `,` $input `,` $act `,` $pre_grad attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Lina_ExpertWeightGradOp : Lina_Op<"expert_weight_grad", [Pure]> {
  let summary = "The gradient of one weight matrix of each local expert";
  let description = [{
    For each local expert e: `result[e] = input[e]^T * grad[e]`, the
    gradient of the weight of a linear map `y = input * w` from the
    gradient `grad` of its output. lina.expert_ffn_grad_weight is two of
    them: `w1_grad = expert_weight_grad(input, pre_grad)` and
    `w2_grad = expert_weight_grad(act, dy)`. --lina-split-expert-grad emits
    them as two ops, so that the all_reduce of the first gradient starts
    while the second's GEMM runs.

    ```mlir
    %dw1 = lina.expert_weight_grad %r, %dz
        : (tensor<1x256x512xf32>, tensor<1x256x2048xf32>) -> tensor<1x512x2048xf32>
    ```
  }];
  let arguments = (ins Lina_Tensor:$input, Lina_Tensor:$grad,
                       OptionalAttr<Lina_ChunkAttr>:$chunk);
  let results = (outs Lina_Tensor:$result);
  let assemblyFormat = [{
    $input `,` $grad attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Lina_CombineGradOp : Lina_Op<"combine_grad", [Pure]> {
  let summary = "Gradients of lina.combine with respect to the buffer and the gate weights";
  let description = [{
    ```mlir
    %dbuf, %dgw = lina.combine_grad %dy, %buf, %ids, %w
        : (tensor<256x512xf32>, tensor<8x32x512xf32>, tensor<256x1xi32>, tensor<256x1xf32>) -> (tensor<8x32x512xf32>, tensor<256x1xf32>)
    ```
  }];
  let arguments = (ins Lina_Tensor:$grad, Lina_Tensor:$input, Lina_IndexTensor:$expert_ids,
                       Lina_Tensor:$gate_weights);
  let results = (outs Lina_Tensor:$input_grad, Lina_Tensor:$gate_weights_grad);
  let assemblyFormat = [{
    $grad `,` $input `,` $expert_ids `,` $gate_weights attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

#endif // LINA_DIALECT_LINA_IR_LINAOPS_TD
