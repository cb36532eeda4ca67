// The -o file is replaced only when the translation succeeds: a failed run
// leaves an existing plan untouched and no temporary file behind.
// RUN: rm -rf %t && mkdir -p %t
// RUN: echo 'previous plan' > %t/plan.json
// RUN: not lina-translate --lina-to-plan %s --lina-plan-function=missing -o %t/plan.json 2>&1 | FileCheck %s --check-prefix=ERR
// RUN: FileCheck %s --check-prefix=KEPT --input-file=%t/plan.json
// RUN: ls %t | FileCheck %s --check-prefix=FILES
// The same with -o=FILE.
// RUN: not lina-translate --lina-to-plan %s --lina-plan-function=missing -o=%t/plan.json
// RUN: FileCheck %s --check-prefix=KEPT --input-file=%t/plan.json
// A successful run replaces it.
// RUN: lina-translate --lina-to-plan %s -o %t/plan.json
// RUN: FileCheck %s --check-prefix=NEW --input-file=%t/plan.json
// RUN: ls %t | FileCheck %s --check-prefix=FILES
// A missing directory is an error naming the file.
// RUN: not lina-translate --lina-to-plan %s -o %t/no/such/dir/plan.json 2>&1 | FileCheck %s --check-prefix=NODIR
// Writes to a full device fail loudly.
// RUN: not lina-translate --lina-to-plan %s -o /dev/full 2>&1 | FileCheck %s --check-prefix=FULL

// ERR: error: lina-to-plan: no function named @missing
// KEPT: previous plan
// FILES-NOT: tmp
// FILES: plan.json
// FILES-NOT: tmp
// NEW: "format": "lina-plan"
// NODIR: error: cannot write the output file '{{.*}}plan.json': No such file or directory
// FULL: No space left on device

lina.grid @world shape = [2] groups = {dp = array<i64: 0>}

func.func @step(%a: tensor<4xf32>) -> tensor<4xf32> {
  %0 = lina.all_reduce %a group = #lina.group<@world, "dp"> reduction = sum : tensor<4xf32>
  return %0 : tensor<4xf32>
}
