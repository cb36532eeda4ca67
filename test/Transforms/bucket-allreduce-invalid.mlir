// RUN: lina-opt %s --lina-bucket-allreduce="bucket-bytes=0" -verify-diagnostics -split-input-file
// RUN: not lina-opt %s --lina-bucket-allreduce="bucket-bytes=-5" 2>&1 | FileCheck %s --check-prefix=NEG
// RUN: not lina-opt %s --lina-bucket-allreduce="bucket-bytes=many" 2>&1 | FileCheck %s --check-prefix=WORD
// RUN: not lina-opt %s --lina-baseline-pipeline="mode=fast" 2>&1 | FileCheck %s --check-prefix=MODE

// NEG: error: invalid value '-5' for option 'bucket-bytes': must be positive
// WORD: for the --bucket-bytes option: 'many' value invalid for long argument
// MODE: for the --mode option: Cannot find option named 'fast'!

lina.grid @world shape = [4] groups = {dp = array<i64: 0>}

// expected-error @+1 {{invalid value '0' for option 'bucket-bytes': must be positive}}
func.func @zero(%a: tensor<32xf32>) -> tensor<32xf32> {
  %g = lina.all_reduce %a group = #lina.group<@world, "dp"> reduction = sum : tensor<32xf32>
  return %g : tensor<32xf32>
}
