/* rec_recorder: the recording subsystem as the proxy sees it: config -> sink (+ embedded broker). */
#ifndef CUT_REC_RECORDER_H
#define CUT_REC_RECORDER_H

#include <stddef.h>

#include "config/config.h"
#include "replay/rec_pair.h"
#include "replay/rec_sink.h"

/*
 * One recorder per process, built from `recording:` at start:
 *  - sink none: recording is off; submit does nothing and returns 0;
 *  - sink kafka with brokers "embedded": starts the embedded broker (topic
 *    created with 4 partitions) and a Kafka sink to it;
 *  - sink kafka otherwise: a Kafka sink to the configured brokers;
 *  - sink file: Avro container files in file_dir.
 * Kafka sinks spill to spill_dir. The sink gets a recording thread
 * (rec_sink_start_thread): workers hand finished pairs to it with
 * rec_sink_record_pair(). Thread-safe after creation.
 */
struct rec_recorder;

/* `rc` is borrowed for the call only. Returns 0 or a negative CUT_ERR_* with
 * err text. Caller frees with rec_recorder_free(). */
int rec_recorder_new(struct rec_recorder **out, const struct cfg_recording *rc, char *err,
                     size_t errlen);

/* The Kafka bootstrap list in use (the embedded broker's when embedded), or
 * NULL when the sink is not Kafka. Owned by the recorder. */
const char *rec_recorder_bootstrap(const struct rec_recorder *r);

/* 1 when the embedded broker runs inside this process. */
int rec_recorder_embedded(const struct rec_recorder *r);

/* The sink, or NULL when recording is off (borrowed). */
struct rec_sink *rec_recorder_sink(struct rec_recorder *r);

/* Encodes and submits `p` (borrowed) with the calling thread's codec.
 * Returns 0 (queued, or recording off) or a negative CUT_ERR_* (counted). */
int rec_recorder_submit(struct rec_recorder *r, struct rec_codec *codec, struct rec_pair *p);

/* Flushes or spills what is queued, stops the sink, then the embedded broker. NULL is ok. */
void rec_recorder_free(struct rec_recorder *r);

#endif
