# cmake -DLOWDOWN=lowdown -DIN=PAGE -DOUT=build/man/man1/mar-x.1 -DVERSION=0.1.0 -P ManPage.cmake
# Turns one Markdown man page of docs/ into roff: its first line ("# mar-x(1)") becomes the page
# title and its "##" sections the man page's sections.
file(STRINGS "${IN}" first LIMIT_COUNT 1)
string(REGEX MATCH "^# ([a-z0-9-]+)\\(1\\)" _ "${first}")
if(NOT CMAKE_MATCH_1)
  message(FATAL_ERROR "${IN}: the first line is not '# name(1)'")
endif()
set(title "${CMAKE_MATCH_1}")
file(READ "${IN}" text)
string(FIND "${text}" "\n" nl)
math(EXPR nl "${nl} + 1")
string(SUBSTRING "${text}" ${nl} -1 body)
file(WRITE "${OUT}.md" "${body}")
execute_process(
  COMMAND "${LOWDOWN}" -s -tman -M "title=${title}" -M section=1 -M shiftheadinglevelby=-1
          -M "source=mar ${VERSION}" -M "volume=mar manual" "${OUT}.md"
  OUTPUT_FILE "${OUT}"
  RESULT_VARIABLE rc)
file(REMOVE "${OUT}.md")
if(NOT rc EQUAL 0)
  file(REMOVE "${OUT}")
  message(FATAL_ERROR "lowdown failed on ${IN}")
endif()
