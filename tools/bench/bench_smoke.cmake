# ctest bench_smoke: writes a tiny synthetic 3-checkpoint history, runs ckz_bench on it and
# checks that it succeeds and prints every row. No timing is asserted.
# Inputs: -DSYNTH=<ckz_bench_synth> -DBENCH=<ckz_bench> -DWORK_DIR=<scratch folder>
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}/history")
execute_process(COMMAND "${SYNTH}" "${WORK_DIR}/history" 3 RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "ckz_bench_synth failed (${rc})")
endif()

function(run_bench name)
  execute_process(COMMAND "${BENCH}" ${ARGN}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  message(STATUS "ckz_bench ${ARGN}\n${out}${err}")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${name}: ckz_bench exited with ${rc}")
  endif()
  foreach(row "zstd -19 (whole file)" "xz -9 (whole file)" "byte-shuffle + zstd -19"
              "ckz keyframe" "ckz lossless delta" "Peak RSS" "links only")
    string(FIND "${out}" "${row}" at)
    if(at EQUAL -1)
      message(FATAL_ERROR "${name}: the output lacks '${row}'")
    endif()
  endforeach()
  # Natural order: step_20, step_60, step_100 (not step_100 first, as text order would put it).
  if(NOT out MATCHES "step_20\\.safetensors, step_60\\.safetensors, step_100\\.safetensors")
    message(FATAL_ERROR "${name}: checkpoints not listed in natural order")
  endif()
  set(bench_out "${out}" PARENT_SCOPE)
endfunction()

run_bench(plain --repeat 1 --threads 2 "${WORK_DIR}/history")
run_bench(markdown --repeat 1 --markdown --per-checkpoint --json "${WORK_DIR}/bench.json"
          "${WORK_DIR}/history")
if(NOT bench_out MATCHES "\\| ckz lossless delta +\\|")
  message(FATAL_ERROR "markdown: no markdown table row for ckz lossless delta")
endif()
file(READ "${WORK_DIR}/bench.json" json)
foreach(key "\"rows\"" "\"delta_links\"" "\"peak_rss_bytes\"" "\"ckz lossless delta\""
        "\"ckz lossless delta + cmf\"" "\"ckz lossless delta, no KeySplit (0.7)\"")
  string(FIND "${json}" "${key}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "bench.json lacks ${key}")
  endif()
endforeach()
if(CMAKE_VERSION VERSION_GREATER_EQUAL 3.19)
  string(JSON n LENGTH "${json}" rows)
  if(NOT n EQUAL 7)
    message(FATAL_ERROR "bench.json has ${n} rows, expected 7")
  endif()
endif()
