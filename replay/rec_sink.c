/* rec_sink: the sink interface and the file sink. */
#include <stdlib.h>
#include <string.h>

#include "common/cut_err.h"
#include "replay/rec_avro.h"
#include "replay/rec_avrofile.h"
#include "replay/rec_pairq.h"
#include "replay/rec_sink.h"

int rec_sink_submit(struct rec_sink *s, const char *key, size_t keylen, const uint8_t *rec,
                    size_t len) {
  if (len < REC_SOE_HEADER_LEN || rec[0] != 0xC3 || rec[1] != 0x01)
    return CUT_ERR_INVALID;
  return s->ops->submit(s, key, keylen, rec, len);
}

int rec_sink_submit_pair(struct rec_sink *s, struct rec_codec *codec, struct rec_pair *p) {
  /* Encoded into the codec's reused buffer; the sink copies what it keeps.
   * (Handing librdkafka a malloc'ed buffer to free instead saves the copy,
   * but the buffer is then freed on librdkafka's thread, and allocating a
   * fresh one per record on this thread costs more than the copy.) */
  const uint8_t *buf;
  size_t len;
  int rc = rec_codec_encode_reuse(codec, p, &buf, &len);
  if (rc) {
    rec_stat_add(&s->stats, dropped[REC_DROP_ENCODE], 1);
    return rc;
  }
  return rec_sink_submit(s, p->correlation_id, strlen(p->correlation_id), buf, len);
}

int rec_sink_start_thread(struct rec_sink *s, const struct rec_pairq_opts *o, char *err,
                          size_t errlen) {
  if (s->pairq)
    return CUT_ERR_STATE;
  return rec_pairq_new(&s->pairq, s, o, err, errlen);
}

int rec_sink_record_pair(struct rec_sink *s, struct rec_codec *codec, struct rec_pair *p) {
  if (s->pairq && rec_pairq_push(s->pairq, p) == 0)
    return 0;
  int rc = rec_sink_submit_pair(s, codec, p);
  rec_pair_free(p);
  return rc;
}

void rec_sink_flush(struct rec_sink *s, int timeout_ms) {
  if (s->pairq)
    rec_pairq_flush(s->pairq);
  if (s->ops->flush)
    s->ops->flush(s, timeout_ms);
}

void rec_sink_stats(const struct rec_sink *s, struct rec_stats_view *out) {
  rec_stats_read(&s->stats, out);
}

void rec_sink_free(struct rec_sink *s) {
  if (!s)
    return;
  rec_pairq_free(s->pairq); /* first: it submits what is still queued */
  s->pairq = NULL;
  s->ops->free(s);
}

/* ---- file sink ---- */

struct file_sink {
  struct rec_sink base; /* first: the sink pointer is this struct's */
  struct rec_avrofile *files;
};

static int file_submit(struct rec_sink *s, const char *key, size_t keylen, const uint8_t *rec,
                       size_t len) {
  (void)key;
  (void)keylen;
  struct file_sink *fs = (struct file_sink *)s;
  rec_stat_add(&s->stats, produced, 1);
  int rc = rec_avrofile_push(fs->files, rec + REC_SOE_HEADER_LEN, len - REC_SOE_HEADER_LEN);
  return rc ? CUT_ERR_FULL : 0;
}

static void file_flush(struct rec_sink *s, int timeout_ms) {
  (void)timeout_ms;
  rec_avrofile_flush(((struct file_sink *)s)->files);
}

static void file_free(struct rec_sink *s) {
  struct file_sink *fs = (struct file_sink *)s;
  rec_avrofile_free(fs->files);
  free(fs);
}

static const struct rec_sink_ops file_ops = {"file", file_submit, file_flush, file_free};

int rec_sink_file_new(struct rec_sink **out, const char *dir, uint64_t segment_bytes,
                      char *err, size_t errlen) {
  struct file_sink *fs = calloc(1, sizeof *fs);
  if (!fs)
    return CUT_ERR_NOMEM;
  fs->base.ops = &file_ops;
  struct rec_avrofile_opts o = {.dir = dir, .prefix = "pairs", .segment_bytes = segment_bytes};
  int rc = rec_avrofile_new(&fs->files, &o, &fs->base.stats, &fs->base.stats.delivered, err, errlen);
  if (rc) {
    free(fs);
    return rc;
  }
  *out = &fs->base;
  return 0;
}
