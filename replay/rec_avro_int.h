/* rec_avro_int: internals of rec_avro for the unit tests. */
#ifndef CUT_REC_AVRO_INT_H
#define CUT_REC_AVRO_INT_H

#include "replay/rec_avro.h"

/* The schema-driven encoder (avro-c generic values from the embedded schema):
 * the reference the direct encoder (rec_codec_encode) is checked against.
 * Same contract as rec_codec_encode. */
int rec_codec_encode_generic(struct rec_codec *c, struct rec_pair *p, uint8_t **out,
                             size_t *outlen);

#endif
