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

#endif // LINA_DIALECT_LINA_IR_LINAATTRS_TD
