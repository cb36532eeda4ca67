// The whole training schedule on the training-step example.

// REPORT: remark: lina-partition-allreduce: split 2 all_reduce ops into 8 partitions
// REPORT: remark: lina-pipeline-experts: split 4 chains into 16 chunks
// REPORT: remark: lina-prioritize-alltoall: 32 high, 10 low, 20 hold_low marks, 0 moved

// The backward chain reads the forward chain's received chunks directly and
// sums the chunks' weight gradients.

// The default 30 MiB partition leaves these small gradients whole.
// DEFAULT-NOT: partition =
// DEFAULT: lina.all_reduce {{.*}}priority = #lina.priority<low>

// BAD: error: invalid value '0' for option 'chunks': must be positive
