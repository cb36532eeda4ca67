// RUN: lina-translate --lina-to-plan --lina-plan-function=first %s | FileCheck %s --check-prefix=FIRST
// RUN: lina-translate --lina-to-plan --lina-plan-function=first --lina-plan-mode=train %s | FileCheck %s --check-prefix=TRAIN
// RUN: lina-translate --lina-to-plan --lina-plan-function=second %s | FileCheck %s --check-prefix=SECOND
// RUN: lina-translate --lina-to-plan --lina-plan-function=second --lina-plan-mode=infer %s | FileCheck %s --check-prefix=INFER
// RUN: lina-translate --lina-to-plan --lina-plan-function=helper %s | FileCheck %s --check-prefix=PRIVATE
// RUN: lina-translate --lina-to-plan --lina-plan-function=reshaped_weight %s | FileCheck %s --check-prefix=RESHAPED
// RUN: not lina-translate --lina-to-plan --lina-plan-function=nope %s 2>&1 | FileCheck %s --check-prefix=NOPE
// RUN: not lina-translate --lina-to-plan --lina-plan-mode=bogus %s 2>&1 | FileCheck %s --check-prefix=BADMODE
// RUN: lina-translate --help | FileCheck %s --check-prefix=HELP
// RUN: echo 'func.func @f(%%a: tensor<4xf32>) -> tensor<4xf32> { return %%a : tensor<4xf32> }' | not lina-translate --lina-to-plan 2>&1 | FileCheck %s --check-prefix=NOGRID

lina.grid @world shape = [4] groups = {ep = array<i64: 0>}

// An inference function with a variable all_to_all; lina.name and lina.init
// argument attributes; an argument returned as is stays an input.
// FIRST:      "function": "first",
// FIRST:      "mode": "infer",
// FIRST:      "buffers": [
// FIRST-NEXT:   {"id":0,"name":"rows","dtype":"bf16","shape":[64,32],"role":"input","init":"random"},
// FIRST-NEXT:   {"id":1,"name":"send","dtype":"i64","shape":[4],"role":"input","init":"zero"},
// FIRST-NEXT:   {"id":2,"name":"arg2","dtype":"i64","shape":[4],"role":"input","init":"random"},
// FIRST-NEXT:   {"id":3,"name":"t3","dtype":"bf16","shape":[96,32],"role":"output","init":"none"}
// FIRST-NEXT: ],
// FIRST-NEXT: "ops": [
// FIRST-NEXT:   {"id":0,"kind":"all_to_all_v","inputs":[0,1,2],"outputs":[3],"deps":[],"attrs":{"concat_axis":0,"max_rows":96,"split_axis":0},"group":"ep","priority":"low","loc":"options.mlir:[[@LINE+8]]:8"}
// FIRST-NEXT: ],
// FIRST-NEXT: "outputs": [3,0]
// TRAIN: "mode": "train",
func.func @first(%rows: tensor<64x32xbf16> {lina.name = "rows"},
                 %send: tensor<4xi64> {lina.name = "send", lina.init = "zero"},
                 %recv: tensor<4xi64>)
    -> (tensor<96x32xbf16>, tensor<64x32xbf16>) {
  %0 = lina.all_to_all %rows counts(%send, %recv : tensor<4xi64>, tensor<4xi64>) group = #lina.group<@world, "ep"> split_axis = 0 concat_axis = 0 {priority = #lina.priority<low>} : tensor<64x32xbf16> -> tensor<96x32xbf16>
  return %0, %rows : tensor<96x32xbf16>, tensor<64x32xbf16>
}

// A function with a gradient op is a training step unless told otherwise.
// SECOND: "function": "second",
// SECOND: "mode": "train",
// SECOND: {"id":0,"name":"arg0","dtype":"f16","shape":[8,4],"role":"input","init":"random"},
// SECOND: {"id":1,"name":"arg1","dtype":"f16","shape":[8,16],"role":"input","init":"random"},
// SECOND: {"id":2,"name":"arg2","dtype":"f16","shape":[16,4],"role":"param","init":"random"},
// SECOND: "ops": [
// SECOND-NEXT: {"id":0,"kind":"dense_grad","inputs":[0,1,2],"outputs":[3,4],"deps":[],"attrs":{"activation":"gelu"},"loc":
// INFER: "mode": "infer",
func.func @second(%dy: tensor<8x4xf16>, %x: tensor<8x16xf16>, %w: tensor<16x4xf16>) -> (tensor<8x16xf16>, tensor<16x4xf16>) {
  %dx, %dw = lina.dense_grad %dy, %x, %w activation = gelu : (tensor<8x4xf16>, tensor<8x16xf16>, tensor<16x4xf16>) -> (tensor<8x16xf16>, tensor<16x4xf16>)
  return %dx, %dw : tensor<8x16xf16>, tensor<16x4xf16>
}

// A private function is emitted when named.
// PRIVATE: "function": "helper",
// PRIVATE: "outputs": [0]
func.func private @helper(%a: tensor<4xf32>) -> tensor<4xf32> {
  return %a : tensor<4xf32>
}

// A weight reshaped before use is still a parameter.
// RESHAPED:      {"id":0,"name":"arg0","dtype":"f32","shape":[4,16],"role":"input","init":"random"},
// RESHAPED-NEXT: {"id":1,"name":"arg1","dtype":"f32","shape":[1,16,8],"role":"param","init":"random"},
// RESHAPED-NEXT: {"id":2,"name":"t2","dtype":"f32","shape":[16,8],"role":"temp","init":"none","view":{"base":1,"offset":0}},
// RESHAPED:      {"id":0,"kind":"dense","inputs":[0,2],"outputs":[3],"deps":[],"attrs":{"activation":"none"},
func.func private @reshaped_weight(%x: tensor<4x16xf32>, %w: tensor<1x16x8xf32>) -> tensor<4x8xf32> {
  %w2 = tensor.collapse_shape %w [[0, 1], [2]] : tensor<1x16x8xf32> into tensor<16x8xf32>
  %y = lina.dense %x, %w2 activation = none : (tensor<4x16xf32>, tensor<16x8xf32>) -> tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}

// NOPE: error: lina-to-plan: no function named @nope
// BADMODE: for the --lina-plan-mode option: Cannot find option named 'bogus'!
// HELP: --lina-to-plan{{ +}}- Emit the executable Lina plan (JSON, docs/PLAN.md) of scheduled lina IR
// HELP: lina-to-plan options:
// HELP: --lina-plan-function=<name>{{ +}}- Function to emit with --lina-to-plan (default: the only public function with a body)
// HELP-NEXT: --lina-plan-mode=<value>{{ +}}- The plan's mode (default: train if the function has a *_grad op, else infer)
// HELP-NEXT: =train{{ +}}- a training step
// HELP-NEXT: =infer{{ +}}- an inference step
// NOGRID: error: lina-to-plan: expected exactly one lina.grid, found 0
