# ctest driver for tests/consumer: builds that project against qwen3 the way another project would,
# runs it on the micro model and checks its top token against llama.cpp's (tests/data/llamacpp/micro).
#
#   cmake -DMODE=package|subdirectory|fetchcontent -DQWEN3_SOURCE_DIR=... -DWORK_DIR=... -DGENERATOR=...
#         -DCXX_COMPILER=... -DC_COMPILER=... [-DCONFIGURE_ONLY=ON] -P run_consumer.cmake
#
# package: configures qwen3 afresh (tests and tools off), `cmake --install`s it into WORK_DIR/prefix and
# builds the consumer with find_package against that prefix only. CONFIGURE_ONLY stops after the
# consumer's configure step (which fails if qwen3::qwen3 is missing or qwen3 leaks its own targets).
cmake_minimum_required(VERSION 3.20)
foreach(var MODE QWEN3_SOURCE_DIR WORK_DIR GENERATOR CXX_COMPILER C_COMPILER)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "run_consumer.cmake: -D${var}=... is required")
  endif()
endforeach()

function(run)
  string(REPLACE ";" " " shown "${ARGN}")
  message(STATUS "+ ${shown}")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${shown}")
  endif()
endfunction()

file(REMOVE_RECURSE ${WORK_DIR})
set(compilers -DCMAKE_CXX_COMPILER=${CXX_COMPILER} -DCMAKE_C_COMPILER=${C_COMPILER})
set(consumer_args -DQWEN3_CONSUMER_MODE=${MODE})
if(MODE STREQUAL "package")
  set(prefix ${WORK_DIR}/prefix)
  run(${CMAKE_COMMAND} -S ${QWEN3_SOURCE_DIR} -B ${WORK_DIR}/qwen3-build -G ${GENERATOR} ${compilers}
      -DCMAKE_BUILD_TYPE=Release -DQWEN3_BUILD_TESTS=OFF -DQWEN3_BUILD_EXAMPLES=OFF -DCMAKE_INSTALL_PREFIX=${prefix})
  run(${CMAKE_COMMAND} --install ${WORK_DIR}/qwen3-build)
  foreach(file include/qwen3/qwen3.hpp include/qwen3.hpp share/cmake/qwen3/qwen3Config.cmake
          share/cmake/qwen3/qwen3ConfigVersion.cmake share/cmake/qwen3/qwen3Targets.cmake
          share/cmake/qwen3/qwen3Dependencies.cmake)
    if(NOT EXISTS ${prefix}/${file})
      message(FATAL_ERROR "cmake --install did not install ${file}")
    endif()
  endforeach()
  # only the prefix: no package registry, no source tree
  list(APPEND consumer_args -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF)
else()
  list(APPEND consumer_args -DQWEN3_SOURCE_DIR=${QWEN3_SOURCE_DIR})
endif()

set(consumer_build ${WORK_DIR}/consumer-build)
run(${CMAKE_COMMAND} -S ${CMAKE_CURRENT_LIST_DIR} -B ${consumer_build} -G ${GENERATOR} ${compilers}
    -DCMAKE_BUILD_TYPE=Release ${consumer_args})
if(MODE STREQUAL "package")
  file(STRINGS ${consumer_build}/CMakeCache.txt found REGEX "^qwen3_DIR:")
  if(NOT found STREQUAL "qwen3_DIR:PATH=${prefix}/share/cmake/qwen3")
    message(FATAL_ERROR "find_package(qwen3) found '${found}', not the package installed in ${prefix}")
  endif()
endif()
if(CONFIGURE_ONLY)
  message(STATUS "consumer (${MODE}) configured")
  return()
endif()
run(${CMAKE_COMMAND} --build ${consumer_build})

# The reference: prompt m1 and llama.cpp's argmax after its last token (its first greedy token).
file(READ ${QWEN3_SOURCE_DIR}/tests/data/llamacpp/micro/m1.json golden)
string(JSON n LENGTH "${golden}" tokens)
set(tokens "")
math(EXPR last "${n} - 1")
foreach(i RANGE ${last})
  string(JSON t GET "${golden}" tokens ${i})
  list(APPEND tokens ${t})
endforeach()
string(JSON expected GET "${golden}" greedy 0)  # llama.cpp's argmax after the last prompt token

execute_process(COMMAND ${consumer_build}/consumer ${QWEN3_SOURCE_DIR}/tests/data/qwen3-micro-f32.gguf ${tokens}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
message(STATUS "consumer: ${out}${err}")
if(NOT rc EQUAL 0 OR NOT out STREQUAL "top token: ${expected}\n")
  message(FATAL_ERROR "consumer (${MODE}) printed '${out}' (exit ${rc}); llama.cpp's top token is ${expected}")
endif()
message(STATUS "consumer (${MODE}): top token ${expected}, as llama.cpp")
