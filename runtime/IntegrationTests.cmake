#===- IntegrationTests.cmake - lina-run end to end, under ctest ----------===#
#
# Part of the Lina project.
#
# Runs lina-run on the hand-written plans of test/runtime/plans (see
# make_plans.py there): the Lina schedule of a 2-layer top-1 MoE training
# step against the unscheduled plan with --check, on 1, 2 and 4 ranks;
# all tokens routed to one expert; launch and plan errors; the watchdog;
# the dump and the trace. Included from runtime/CMakeLists.txt.
#===----------------------------------------------------------------------===#

set(LINA_RT_PLANS ${PROJECT_SOURCE_DIR}/test/runtime/plans)
set(LINA_RT_ENV
  OMPI_ALLOW_RUN_AS_ROOT=1
  OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  OMPI_MCA_rmaps_base_oversubscribe=1
  OPENBLAS_NUM_THREADS=1)

# lina_rt_test(NAME RANKS ARGS... [PASS regex]): lina-run ARGS on RANKS
# ranks (0: without mpirun). Fails on a non-zero exit or a "FAIL" line
# unless PASS is given, in which case the output must match it.
function(lina_rt_test name ranks)
  cmake_parse_arguments(ARG "" "PASS" "" ${ARGN})
  if(ranks EQUAL 0)
    set(cmd $<TARGET_FILE:lina-run> ${ARG_UNPARSED_ARGUMENTS})
  else()
    if(NOT LINA_HAVE_MPI)
      return()
    endif()
    set(cmd ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} ${ranks}
        $<TARGET_FILE:lina-run> ${ARG_UNPARSED_ARGUMENTS})
  endif()
  add_test(NAME ${name} COMMAND ${cmd})
  set_tests_properties(${name} PROPERTIES ENVIRONMENT "${LINA_RT_ENV}"
    TIMEOUT 120 LABELS runtime)
  if(ARG_PASS)
    set_tests_properties(${name} PROPERTIES PASS_REGULAR_EXPRESSION "${ARG_PASS}")
  else()
    set_tests_properties(${name} PROPERTIES FAIL_REGULAR_EXPRESSION "FAIL")
  endif()
endfunction()

set(check_pass "check: 10 outputs vs [^\n]*: PASS")

# The Lina plan under the lina policy computes what the unscheduled plan
# computes under fifo. Rank count 1 runs without mpirun (no MPI needed).
foreach(np 1 2 4)
  set(mpi_np ${np})
  if(np EQUAL 1)
    set(mpi_np 0)
  endif()
  lina_rt_test(lina-run.moe2.np${np}.check ${mpi_np}
    ${LINA_RT_PLANS}/moe2_np${np}.lina.json --steps 2 --warmup 1
    --check --baseline ${LINA_RT_PLANS}/moe2_np${np}.base.json)
  # Every token to expert 0 (zero router weights tie all logits): the
  # other experts receive zero tokens, expert 0 drops beyond its capacity.
  lina_rt_test(lina-run.onehot.np${np}.check ${mpi_np}
    ${LINA_RT_PLANS}/onehot_np${np}.lina.json --steps 1 --warmup 0
    --check --baseline ${LINA_RT_PLANS}/onehot_np${np}.base.json)
endforeach()

# fifo against fifo on the same plan, and the credit window.
lina_rt_test(lina-run.moe2.np2.fifo-self-check 2
  ${LINA_RT_PLANS}/moe2_np2.base.json --policy fifo --steps 1 --warmup 0 --check
  PASS "summary: policy=fifo[^\n]*\ncheck: 10 outputs vs the fifo policy[^\n]*: PASS")
lina_rt_test(lina-run.moe2.np4.credit 4
  ${LINA_RT_PLANS}/moe2_np4.lina.json --credit-bytes 512 --steps 2 --warmup 0
  --check --baseline ${LINA_RT_PLANS}/moe2_np4.base.json)

# Per-step lines and the summary.
lina_rt_test(lina-run.moe2.np2.report 2
  ${LINA_RT_PLANS}/moe2_np2.lina.json --steps 2 --warmup 0
  PASS "step   1: [^\n]* ms  all_to_all blocked [^\n]* ms[^\n]*all_reduce [^\n]*\nsummary: policy=lina steps=2 step_ms=")

# Launch and plan errors.
lina_rt_test(lina-run.world-size-mismatch 1
  ${LINA_RT_PLANS}/moe2_np2.lina.json
  PASS "error: the plan '[^']*moe2_np2.lina.json' is for 2 ranks, but 1 were launched")
lina_rt_test(lina-run.missing-plan 0 ${LINA_RT_PLANS}/no_such_plan.json
  PASS "error: cannot open plan")
lina_rt_test(lina-run.invalid-plan 0 ${LINA_RT_PLANS}/invalid/dispatch_experts.json
  PASS "op 1 \\(dispatch at bad.mlir:7:3\\): [^\n]*num_experts")
lina_rt_test(lina-run.bad-flag 0 ${LINA_RT_PLANS}/moe2_np1.lina.json --policy random
  PASS "unknown policy 'random'")
lina_rt_test(lina-run.bad-value 0 ${LINA_RT_PLANS}/moe2_np1.lina.json --steps zero
  PASS "invalid value 'zero' for --steps")

# Watchdog: rank 1 runs a plan without collectives, so rank 0's first
# all_to_all never completes; the job ends naming rank, op and group.
if(LINA_HAVE_MPI)
  add_test(NAME lina-run.watchdog COMMAND ${MPIEXEC_EXECUTABLE}
    ${MPIEXEC_NUMPROC_FLAG} 1 $<TARGET_FILE:lina-run>
      ${LINA_RT_PLANS}/moe2_np2.lina.json --timeout 2 --warmup 0 --steps 1 :
    ${MPIEXEC_NUMPROC_FLAG} 1 $<TARGET_FILE:lina-run>
      ${LINA_RT_PLANS}/idle_np2.json --warmup 0 --steps 1)
  set_tests_properties(lina-run.watchdog PROPERTIES ENVIRONMENT "${LINA_RT_ENV}"
    TIMEOUT 60 LABELS runtime
    PASS_REGULAR_EXPRESSION "rank 0: op 4 \\(all_to_all at moe2_np2.lina.json:[0-9]+:[0-9]+\\) in group 'ep' did not complete within 2 s")
endif()

# The readable dump.
lina_rt_test(lina-run.dump 0 ${LINA_RT_PLANS}/moe2_np2.lina.json --dump
  PASS "all_to_all[^\n]*group=ep priority=high chunk=0/2")

# The trace: one file for all ranks, a pid per rank, a tid per queue.
if(LINA_HAVE_MPI)
  set(trace ${CMAKE_CURRENT_BINARY_DIR}/lina-run-np4-trace.json)
  lina_rt_test(lina-run.trace.np4 4 ${LINA_RT_PLANS}/moe2_np4.lina.json
    --steps 1 --warmup 0 --trace ${trace})
  add_test(NAME lina-run.trace.np4.contents COMMAND ${CMAKE_COMMAND}
    -DTRACE=${trace} -P ${CMAKE_CURRENT_SOURCE_DIR}/CheckTrace.cmake)
  set_tests_properties(lina-run.trace.np4 PROPERTIES FIXTURES_SETUP lina_trace)
  set_tests_properties(lina-run.trace.np4.contents PROPERTIES
    FIXTURES_REQUIRED lina_trace LABELS runtime)
endif()

# An error on one rank only while executing (here rank 1's plan has i64
# expert ids, which the cpu backend does not compute with) ends the job at
# once with that rank's message, instead of leaving the others to time out.
if(LINA_HAVE_MPI)
  add_test(NAME lina-run.one-rank-error COMMAND ${MPIEXEC_EXECUTABLE}
    ${MPIEXEC_NUMPROC_FLAG} 1 $<TARGET_FILE:lina-run>
      ${LINA_RT_PLANS}/moe2_np2.lina.json --warmup 0 --steps 1 :
    ${MPIEXEC_NUMPROC_FLAG} 1 $<TARGET_FILE:lina-run>
      ${LINA_RT_PLANS}/i64_ids_np2.json --warmup 0 --steps 1)
  set_tests_properties(lina-run.one-rank-error PROPERTIES
    ENVIRONMENT "${LINA_RT_ENV}" TIMEOUT 30 LABELS runtime
    PASS_REGULAR_EXPRESSION "error: rank 1: op 0 \\(gate at i64ids.mlir:4:3\\): expert ids must be i32")
endif()
