# Embeds the exact text of replay/schemas/pair.avsc into the core library as a
# byte array (gen/replay/rec_schema_text.h), so the binary needs no data files
# and always ships the schema it encodes with. Re-runs when the file changes.
set(PAIR_AVSC ${CMAKE_SOURCE_DIR}/replay/schemas/pair.avsc)
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${PAIR_AVSC})
file(READ ${PAIR_AVSC} pair_avsc_hex HEX)
string(LENGTH "${pair_avsc_hex}" pair_avsc_hexlen)
math(EXPR PAIR_AVSC_LEN "${pair_avsc_hexlen} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," PAIR_AVSC_BYTES "${pair_avsc_hex}")
file(CONFIGURE OUTPUT ${CMAKE_BINARY_DIR}/gen/replay/rec_schema_text.h CONTENT
"/* Generated from replay/schemas/pair.avsc by replay/schema.cmake: do not edit. */
#define REC_SCHEMA_TEXT_LEN ${PAIR_AVSC_LEN}
static const unsigned char rec_schema_text[] = {${PAIR_AVSC_BYTES} 0x00};
" @ONLY)
target_include_directories(cutover_core PUBLIC ${CMAKE_BINARY_DIR}/gen)
