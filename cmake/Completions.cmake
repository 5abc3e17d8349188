# cmake -DMAR=build/mar -DOUT=build/completions -P Completions.cmake
# Writes the shell completions with the built mar (`mar completion SHELL`, cli/completion.c).
foreach(pair "bash;mar" "zsh;_mar" "fish;mar.fish")
  list(GET pair 0 shell)
  list(GET pair 1 name)
  execute_process(COMMAND "${MAR}" completion ${shell} OUTPUT_FILE "${OUT}/${name}"
                  RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    file(REMOVE "${OUT}/${name}")
    message(FATAL_ERROR "mar completion ${shell} failed (${rc})")
  endif()
endforeach()
