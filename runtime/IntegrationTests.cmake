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

# Every test gets its own TMPDIR: Open MPI keeps its session directory
# there, and concurrent mpirun processes sharing one remove each other's
# (`orte_init failed` in a parallel ctest run).
set(LINA_RT_TMP ${CMAKE_CURRENT_BINARY_DIR}/mpi-tmp)
function(lina_rt_env name out)
  file(MAKE_DIRECTORY ${LINA_RT_TMP}/${name})
  set(${out} ${LINA_RT_ENV} TMPDIR=${LINA_RT_TMP}/${name} ${ARGN} PARENT_SCOPE)
endfunction()

# lina_rt_fail_test(NAME COMMAND... EXPECT regex [ENV vars...]): the command
# must exit non-zero with output matching the regex (no ';' in it).
function(lina_rt_fail_test name)
  cmake_parse_arguments(ARG "" "EXPECT" "ENV" ${ARGN})
  string(REPLACE ";" "^^" cmd "${ARG_UNPARSED_ARGUMENTS}")
  add_test(NAME ${name} COMMAND ${CMAKE_COMMAND} -DCMD=${cmd}
    -DEXPECT=${ARG_EXPECT} -P ${CMAKE_CURRENT_SOURCE_DIR}/ExpectFailure.cmake)
  lina_rt_env(${name} env ${ARG_ENV})
  set_tests_properties(${name} PROPERTIES ENVIRONMENT "${env}" TIMEOUT 120
    LABELS runtime)
endfunction()

# lina_rt_test(NAME RANKS ARGS... [PASS regex] [ENV vars...]): lina-run ARGS
# on RANKS ranks (0: without mpirun). Fails on a non-zero exit or a "FAIL"
# line unless PASS is given, in which case the output must match it.
function(lina_rt_test name ranks)
  cmake_parse_arguments(ARG "" "PASS" "ENV" ${ARGN})
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
  lina_rt_env(${name} env ${ARG_ENV})
  set_tests_properties(${name} PROPERTIES ENVIRONMENT "${env}"
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
  PASS "summary: policy=fifo[^\n]*\ncheck: routing pinned[^\n]*\ncheck: 10 outputs vs the fifo policy[^\n]*: PASS")
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

# Watchdog: rank 1 stops before its first collective (an injected fault),
# so rank 0's first all_to_all never completes; the job ends naming the
# waiting rank, the op, the group, and rank 1 as the one that is missing.
if(LINA_HAVE_MPI)
  lina_rt_fail_test(lina-run.watchdog ${MPIEXEC_EXECUTABLE}
    ${MPIEXEC_NUMPROC_FLAG} 2 $<TARGET_FILE:lina-run>
    ${LINA_RT_PLANS}/moe2_np2.lina.json --timeout 2 --warmup 0 --steps 1
    ENV LINA_RUN_INJECT_FAULT=1:stall
    EXPECT "rank 0: op 4 \\(all_to_all at moe2_np2.lina.json:[0-9]+:[0-9]+\\) in group 'ep' did not complete within 2 s: rank 1 does not answer")
endif()

# Start-up agreement: ranks that run different plans, or the same plan with
# different flags, are named before any collective of the plan; a rank that
# cannot load its plan reports its own error.
if(LINA_HAVE_MPI)
  foreach(case plans flags load)
    if(case STREQUAL "plans")
      set(second ${LINA_RT_PLANS}/idle_np2.json --warmup 0 --steps 1)
      set(expect "rank 1 loaded a plan with hash [0-9a-f]+ \\('[^']*idle_np2.json', world_size 2\\), rank 0 [0-9a-f]+ \\('[^']*moe2_np2.lina.json', world_size 2\\): every rank must run the same plan")
    elseif(case STREQUAL "flags")
      set(second ${LINA_RT_PLANS}/moe2_np2.lina.json --warmup 0 --steps 2)
      set(expect "rank 1 was launched with '--steps 2 [^']*', rank 0 with '--steps 1 [^']*': every rank needs the same flags")
    else()
      set(second ${LINA_RT_PLANS}/no_such_plan.json --warmup 0 --steps 1)
      set(expect "error: rank 1: cannot open plan '[^']*no_such_plan.json'")
    endif()
    lina_rt_fail_test(lina-run.agreement.${case} ${MPIEXEC_EXECUTABLE}
      ${MPIEXEC_NUMPROC_FLAG} 1 $<TARGET_FILE:lina-run>
        ${LINA_RT_PLANS}/moe2_np2.lina.json --warmup 0 --steps 1 :
      ${MPIEXEC_NUMPROC_FLAG} 1 $<TARGET_FILE:lina-run> ${second}
      EXPECT "${expect}")
  endforeach()
endif()

# Memory preflight: a 4 TiB buffer is refused before anything is allocated.
lina_rt_fail_test(lina-run.memory-preflight $<TARGET_FILE:lina-run>
  ${PROJECT_SOURCE_DIR}/test/runtime/Inputs/huge_buffer.json
  EXPECT "error: the plan needs 4096.00 GiB of buffers on rank 0. [0-9.]+ GiB are available")

# A trace that cannot be written is an error (exit code and message).
lina_rt_fail_test(lina-run.trace-write-error $<TARGET_FILE:lina-run>
  ${LINA_RT_PLANS}/moe2_np1.lina.json --steps 1 --warmup 0 --trace /dev/full
  EXPECT "error: cannot write trace '/dev/full': writing: No space left on device")

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

# An error on one rank only while executing (an injected fault at rank 1's
# first collective) ends the job at once with that rank's message, instead
# of leaving the others to time out.
if(LINA_HAVE_MPI)
  lina_rt_fail_test(lina-run.one-rank-error ${MPIEXEC_EXECUTABLE}
    ${MPIEXEC_NUMPROC_FLAG} 2 $<TARGET_FILE:lina-run>
    ${LINA_RT_PLANS}/moe2_np2.lina.json --warmup 0 --steps 1
    ENV LINA_RUN_INJECT_FAULT=1:error
    EXPECT "error: rank 1: op 4 \\(all_to_all at moe2_np2.lina.json:[0-9]+:[0-9]+\\): injected fault")
endif()

# lina-calibrate reports a cluster file it cannot write, and fails.
if(LINA_HAVE_MPI AND TARGET lina-calibrate)
  lina_rt_fail_test(lina-calibrate.write-error
    ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} 2
    $<TARGET_FILE:lina-calibrate> -o /dev/full
    EXPECT "lina-calibrate: error: cannot write cluster file '/dev/full': writing: No space left on device")
endif()
