# Fails when a committed, generated reference in docs/Dialects differs from
# what mlir-tblgen produces from the current ODS definitions.
#
# Usage: cmake -DGENERATED=<file> -DCOMMITTED=<file> -P CheckGeneratedDocs.cmake
if(NOT EXISTS "${GENERATED}")
  message(FATAL_ERROR "generated reference ${GENERATED} is missing: build the "
    "project first (`ninja` builds the references)")
endif()
if(NOT EXISTS "${COMMITTED}")
  message(FATAL_ERROR "${COMMITTED} is missing: run `ninja lina-docs` and "
    "commit the result")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} -E compare_files "${GENERATED}" "${COMMITTED}"
  RESULT_VARIABLE differ)
if(differ)
  execute_process(COMMAND diff -u "${COMMITTED}" "${GENERATED}")
  message(FATAL_ERROR "${COMMITTED} is out of date with the ODS/TableGen "
    "definitions (diff above): run `ninja -C <build> lina-docs` and commit it")
endif()
message(STATUS "${COMMITTED} matches the generated reference")
