# cmake -DIN=vm/seccomp/default.txt -DOUT=seccomp-default.c -P embed.cmake: the profile text as a
# C array, so that mar carries its default seccomp profile without reading a file at run time.
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" digits)
math(EXPR len "${digits} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "((0x[0-9a-f][0-9a-f],){16})" "\\1\n    " bytes "${bytes}")
file(WRITE ${OUT}.tmp
  "/* Generated from vm/seccomp/default.txt by vm/seccomp/embed.cmake; do not edit. */\n"
  "#include <stddef.h>\n\n"
  "extern const unsigned char vm__seccomp_default_txt[];\n"
  "extern const size_t vm__seccomp_default_txt_len;\n\n"
  "const unsigned char vm__seccomp_default_txt[] = {\n    ${bytes}0x00};\n"
  "const size_t vm__seccomp_default_txt_len = ${len};\n")
file(RENAME ${OUT}.tmp ${OUT})
