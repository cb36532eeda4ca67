#===- CheckTrace.cmake - Check a lina-run Chrome trace -------------------===#
#
# Part of the Lina project.
#
# cmake -DTRACE=file.json -P CheckTrace.cmake: the file is JSON with a
# traceEvents array, names a process per rank and a thread per queue, and
# has complete ("X") events of the all_to_all and all_reduce ops.
#===----------------------------------------------------------------------===#

file(READ ${TRACE} text)
string(JSON count ERROR_VARIABLE err LENGTH "${text}" traceEvents)
if(err)
  message(FATAL_ERROR "${TRACE}: not a Chrome trace: ${err}")
endif()
foreach(needle "\"rank 0\"" "\"rank 3\"" "\"compute\"" "\"high priority\""
               "\"low priority\"" "\"name\":\"all_to_all\"" "\"name\":\"all_reduce\""
               "\"name\":\"expert_ffn\"" "\"ph\":\"X\"" "\"partition\":\"0/3\"")
  string(FIND "${text}" "${needle}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "${TRACE}: no ${needle} in the trace")
  endif()
endforeach()
message(STATUS "${TRACE}: ${count} events")
