#===- ExpectFailure.cmake - A command must fail with a given message ----===#
#
# Part of the Lina project.
#
# cmake -DCMD=prog^^arg^^... -DEXPECT=regex -P ExpectFailure.cmake: runs the
# command; passes when it exits non-zero and its output (stdout and stderr)
# matches the regex. Arguments are separated by ^^ (a CMake list would be
# split by add_test).
#===----------------------------------------------------------------------===#

string(REPLACE "^^" ";" cmd "${CMD}")
execute_process(COMMAND ${cmd} RESULT_VARIABLE rc OUTPUT_VARIABLE out
  ERROR_VARIABLE out)
message("${out}")
if(rc EQUAL 0)
  message(FATAL_ERROR "the command succeeded; it must fail")
endif()
if(NOT out MATCHES "${EXPECT}")
  message(FATAL_ERROR "exit code ${rc}, but the output does not match: ${EXPECT}")
endif()
