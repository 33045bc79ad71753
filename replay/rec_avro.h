/* rec_avro: the pair schema, its fingerprint, and Avro single-object encoding of pairs. */
#ifndef CUT_REC_AVRO_H
#define CUT_REC_AVRO_H

#include <stddef.h>
#include <stdint.h>

#include "replay/rec_pair.h"

/*
 * A record on the wire (Kafka message value) is an Avro single-object
 * encoding: the two bytes C3 01, the 8-byte CRC-64-AVRO (Rabin) fingerprint
 * of the schema's Parsing Canonical Form in little-endian order, then the
 * Avro binary encoding of one `Pair`. Container files (file sink, spill)
 * hold the bare binary records.
 *
 * The schema is the exact text of replay/schemas/pair.avsc, embedded at
 * build time. Everything here is pure computation over memory.
 */

#define REC_SOE_HEADER_LEN 10

/* The embedded schema's exact text (NUL-terminated, static) and length. */
const char *rec_schema_text_get(size_t *len);

/*
 * Computes the Parsing Canonical Form of an Avro schema given as JSON text
 * (Avro specification, "Parsing Canonical Form for Schemas"): primitives in
 * their simple form, full names, only name/type/fields/symbols/items/values/
 * size kept in that order, no whitespace. On success stores a NUL-terminated
 * string in *out (caller frees with free()) and returns 0; else
 * CUT_ERR_PARSE (with err text) or CUT_ERR_NOMEM.
 */
int rec_schema_canonical(const char *json, size_t len, char **out, char *err, size_t errlen);

/* CRC-64-AVRO (the Rabin fingerprint of the Avro specification) of `len` bytes. */
uint64_t rec_rabin64(const void *data, size_t len);

/* Fingerprint of the embedded schema's canonical form (computed once; thread-safe). */
uint64_t rec_schema_fingerprint(void);

/* Writes the 10-byte single-object header for the embedded schema into out. */
void rec_soe_header(uint8_t out[REC_SOE_HEADER_LEN]);

/*
 * A codec holds the parsed schema and one reusable Avro value. It is not
 * thread-safe: each thread that encodes or decodes owns one.
 */
struct rec_codec;

/* Returns 0 or CUT_ERR_AVRO / CUT_ERR_NOMEM (err text). Caller frees with rec_codec_free. */
int rec_codec_new(struct rec_codec **out, char *err, size_t errlen);
void rec_codec_free(struct rec_codec *c);

/* The avro-c schema (an avro_schema_t, borrowed; lives as long as the codec). */
void *rec_codec_schema(struct rec_codec *c);

/*
 * Encodes `p` (borrowed; its body checksums are finished first) as a
 * single-object record. On success stores a malloc'ed buffer in *out and its
 * length in *outlen (caller frees with free()) and returns 0; else
 * CUT_ERR_AVRO or CUT_ERR_NOMEM.
 */
int rec_codec_encode(struct rec_codec *c, struct rec_pair *p, uint8_t **out, size_t *outlen);

/*
 * The same, into the codec's own buffer, which is reused by the next call:
 * *out (borrowed) is valid until then. No allocation once the buffer has
 * grown. Returns 0 or CUT_ERR_NOMEM.
 */
int rec_codec_encode_reuse(struct rec_codec *c, struct rec_pair *p, const uint8_t **out,
                           size_t *outlen);

/*
 * Decodes a single-object record. Returns 0 and a new pair in *out (caller
 * frees with rec_pair_free; its opts are NULL), CUT_ERR_PARSE when the header
 * is not C3 01, CUT_ERR_UNSUPPORTED when the fingerprint is not the embedded
 * schema's, CUT_ERR_AVRO when the record body is malformed, CUT_ERR_NOMEM.
 */
int rec_codec_decode(struct rec_codec *c, const uint8_t *buf, size_t len, struct rec_pair **out);

/* Decodes a bare binary record (no header), as found in container files. */
int rec_codec_decode_binary(struct rec_codec *c, const uint8_t *buf, size_t len,
                            struct rec_pair **out);

/*
 * Reads the correlation id (the first field) of a bare binary record without
 * decoding the rest: stores a pointer into buf and its length. Returns 0 or
 * CUT_ERR_PARSE.
 */
int rec_binary_correlation_id(const uint8_t *buf, size_t len, const char **id, size_t *idlen);

#endif
