//===- LinaAttrs.td - Lina attributes and enums ------------*- tablegen -*-===//

#ifndef LINA_DIALECT_LINA_IR_LINAATTRS_TD
#define LINA_DIALECT_LINA_IR_LINAATTRS_TD

include "lina/Dialect/Lina/IR/LinaDialect.td"
include "mlir/IR/AttrTypeBase.td"
include "mlir/IR/EnumAttr.td"
include "mlir/IR/BuiltinAttributeInterfaces.td"

class Lina_Attr<string name, string attrMnemonic, list<Trait> traits = []>
    : AttrDef<Lina_Dialect, name, traits> {
  let mnemonic = attrMnemonic;
}

//===----------------------------------------------------------------------===//
// Enums
//===----------------------------------------------------------------------===//

def Lina_Priority : I32EnumAttr<"Priority", "scheduling priority of a collective", [
    I32EnumAttrCase<"normal", 0>,
    I32EnumAttrCase<"high", 1>,
    I32EnumAttrCase<"low", 2>
  ]> {
  let genSpecializedAttr = 0;
  let cppNamespace = "::mlir::lina";
}
def Lina_PriorityAttr : EnumAttr<Lina_Dialect, Lina_Priority, "priority"> {
  let summary = "Scheduling priority of a collective";
  let description = [{
    `#lina.priority<high>` marks a collective that sits on the critical path
    (all_to_all); `#lina.priority<low>` marks one that may be held back
    (all_reduce partitions). Collectives without the attribute are `normal`.
  }];
  let assemblyFormat = "`<` $value `>`";
}

def Lina_Reduction : I32EnumAttr<"Reduction", "reduction of an all_reduce", [
    I32EnumAttrCase<"sum", 0>,
    I32EnumAttrCase<"max", 1>,
    I32EnumAttrCase<"min", 2>,
    I32EnumAttrCase<"prod", 3>
  ]> {
  let genSpecializedAttr = 0;
  let cppNamespace = "::mlir::lina";
}
def Lina_ReductionAttr : EnumAttr<Lina_Dialect, Lina_Reduction, "reduction"> {
  let summary = "Reduction kind of an all_reduce";
  let assemblyFormat = "$value";
}

def Lina_Activation : I32EnumAttr<"Activation", "pointwise activation", [
    I32EnumAttrCase<"none", 0>,
    I32EnumAttrCase<"relu", 1>,
    I32EnumAttrCase<"gelu", 2>,
    I32EnumAttrCase<"silu", 3>
  ]> {
  let genSpecializedAttr = 0;
  let cppNamespace = "::mlir::lina";
}
def Lina_ActivationAttr : EnumAttr<Lina_Dialect, Lina_Activation, "activation"> {
  let summary = "Activation applied inside a dense block or expert FFN";
  let description = [{
    `gelu` is the tanh approximation.
  }];
  let assemblyFormat = "$value";
}

//===----------------------------------------------------------------------===//
// Attributes
//===----------------------------------------------------------------------===//

def Lina_GroupAttr : Lina_Attr<"Group", "group"> {
  let summary = "A named parallel group of a device grid";
  let description = [{
    `#lina.group<@world, "ep">` names the group `ep` declared by the
    `lina.grid` symbol `@world`. Every rank belongs to exactly one instance
    of each group: the ranks that share their coordinates on the grid axes
    the group does not span.
  }];
  let parameters = (ins "::mlir::FlatSymbolRefAttr":$grid,
                        "::mlir::StringAttr":$name);
  let assemblyFormat = "`<` $grid `,` $name `>`";
}

def Lina_PartitionAttr : Lina_Attr<"Partition", "partition"> {
  let summary = "Position of an all_reduce partition in its original tensor";
  let description = [{
    `#lina.partition<index = 1, count = 3, offset = 1024, original = 3000>`:
    this all_reduce reduces elements [offset, offset + size) of the
    flattened original tensor of `original` elements, and is piece `index`
    of `count`.
  }];
  let parameters = (ins "int64_t":$index, "int64_t":$count,
                        "int64_t":$offset, "int64_t":$original);
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
}

def Lina_ChunkAttr : Lina_Attr<"Chunk", "chunk"> {
  let summary = "Position of a pipelined micro-chunk";
  let description = [{
    `#lina.chunk<index = 0, count = 4>` marks an op that processes one of
    `count` micro-chunks of tokens produced by `--lina-pipeline-experts`.
  }];
  let parameters = (ins "int64_t":$index, "int64_t":$count);
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
}

def Lina_PlacementAttr : Lina_Attr<"Placement", "placement"> {
  let summary = "Expert placement table of one MoE layer";
  let description = [{
    Where the experts of one MoE layer (one `lina.gate`) live: expert `e`'s
    replicas are entries `offsets[e]` .. `offsets[e + 1] - 1` of the
    parallel arrays `devices` (a device of the layer's expert-parallel
    group) and `shares` (the share of expert `e`'s tokens that replica
    serves). `num_devices` devices with `slots_per_device` expert slots
    each. Built by `--lina-build-placement` and attached to the gate as
    `lina.placement`:

    ```mlir
    // Expert 0 on devices 0 and 1 (half of its tokens each), experts 1..3
    // on devices 2, 3 and 3.
    #lina.placement<num_devices = 4, slots_per_device = 2,
                    offsets = [0, 2, 3, 4, 5], devices = [0, 1, 2, 3, 3],
                    shares = [0.5, 0.5, 1.0, 1.0, 1.0]>
    ```

    Verified: every expert has at least one replica, no expert appears
    twice on a device, devices are in range, shares are positive and sum to
    1 per expert, and no device hosts more than `slots_per_device` experts.
  }];
  let parameters = (ins "int64_t":$numDevices, "int64_t":$slotsPerDevice,
                        ArrayRefParameter<"int64_t">:$offsets,
                        ArrayRefParameter<"int64_t">:$devices,
                        "::mlir::DenseF64ArrayAttr":$shares);
  let assemblyFormat = [{
    `<` `num_devices` `=` $numDevices `,` `slots_per_device` `=` $slotsPerDevice
    `,` `offsets` `=` `[` $offsets `]` `,` `devices` `=` `[` $devices `]`
    `,` `shares` `=` `[` custom<Shares>($shares) `]` `>`
  }];
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    /// Number of experts in the table.
    int64_t getNumExperts() const { return getOffsets().size() - 1; }
    /// Shares as plain decimals, printed with the fewest digits that read
    /// back to the same double.
    static ::mlir::ParseResult
    parseShares(::mlir::AsmParser &parser,
                ::mlir::DenseF64ArrayAttr &shares);
    static void printShares(::mlir::AsmPrinter &printer,
                            ::mlir::DenseF64ArrayAttr shares);
  }];
}

#endif // LINA_DIALECT_LINA_IR_LINAATTRS_TD
