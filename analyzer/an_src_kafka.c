/* an_src_kafka: consume Pair records (Avro single-object encoding) from a Kafka topic. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "analyzer/an_src.h"
#include "common/cut_err.h"
#include "common/log.h"
#include "replay/rec_avro.h"
#include "replay/rec_pair.h"

/* ---- rec_pair (the recording module's decoded record) -> an_record ---- */

static int kvs_copy(const struct rec_kvs *in, struct an_kv **out, size_t *n) {
  *out = calloc(in->n ? in->n : 1, sizeof **out);
  if (*out == NULL) return CUT_ERR_NOMEM;
  for (size_t i = 0; i < in->n; i++) {
    char *k = strdup(in->v[i].key ? in->v[i].key : ""), *v = strdup(in->v[i].value ? in->v[i].value : "");
    if (k == NULL || v == NULL) {
      free(k);
      free(v);
      return CUT_ERR_NOMEM;
    }
    (*out)[i].name = k;
    (*out)[i].value = v;
    *n = i + 1;
  }
  return 0;
}

static int resp_copy(const struct rec_response *in, struct an_resp *r) {
  int rc;
  r->present = 1;
  r->status = in->status;
  if (in->error != NULL && (r->error = strdup(in->error)) == NULL) return CUT_ERR_NOMEM;
  if ((rc = kvs_copy(&in->headers, &r->headers, &r->nheaders)) != 0) return rc;
  if ((rc = kvs_copy(&in->lineage, &r->lineage, &r->nlineage)) != 0) return rc;
  r->body = malloc(in->body.len ? in->body.len : 1);
  if (r->body == NULL) return CUT_ERR_NOMEM;
  if (in->body.len > 0) memcpy(r->body, in->body.data, in->body.len);
  r->body_len = in->body.len;
  return 0;
}

static int record_from_pair(const struct rec_pair *p, struct an_record **out) {
  struct an_record *r = calloc(1, sizeof *r);
  int rc = CUT_ERR_NOMEM;
  if (r == NULL) return rc;
  r->kind = p->kind == REC_KIND_PRIMARY ? AN_KIND_PRIMARY
          : p->kind == REC_KIND_SHADOW  ? AN_KIND_SHADOW
                                        : AN_KIND_PAIR;
  r->time_us = p->time_us;
  if ((r->correlation_id = strdup(p->correlation_id ? p->correlation_id : "")) == NULL ||
      (r->route = strdup(p->route ? p->route : "")) == NULL ||
      (r->method = strdup(p->request.method ? p->request.method : "")) == NULL ||
      (r->path = strdup(p->request.path ? p->request.path : "")) == NULL)
    goto fail;
  if (p->primary != NULL && (rc = resp_copy(p->primary, &r->primary)) != 0) goto fail;
  if (p->nshadows > 0 && (rc = resp_copy(p->shadows[0], &r->shadow)) != 0) goto fail;
  if (p->primary_repeat != NULL && (rc = resp_copy(p->primary_repeat, &r->repeat)) != 0) goto fail;
  *out = r;
  return 0;
fail:
  an_record_free(r);
  return CUT_ERR_NOMEM;
}

/* ---- the consumer ---- */

struct part {
  int32_t id;
  int done;          /* reached its end (or --until) */
  int64_t next;      /* offset after the last message read; -1: none read */
  int64_t committed; /* offset last committed by this member; -1: none */
};

/* What a group member does with its pending records when a commit fails. */
enum on_refusal {
  KEEP_PENDING, /* try again at the next commit */
  DROP_PENDING, /* partitions move away: their next owner reads them */
  COUNT_PENDING /* last resort: count them (at least once) */
};

struct consumer {
  const struct an_kafka_opts *o;
  rd_kafka_t *rk;
  struct part *parts;
  size_t nparts, ndone;
  int assigned; /* a (group) assignment has arrived */
  int failed;
  int closing;  /* the loop has ended: a revocation must not drop records */
  unsigned revokes; /* group rebalances that took this member's partitions */
  /* Group mode: records read but not yet counted. A record is passed to
   * `fn` (counted in this member's summary) only after its offset was
   * committed, so a member never counts a record that the group's next owner
   * of its partition will read again. */
  struct an_record **pend;
  size_t npend, pendcap;
  /* Commits run every SETTLE_EVERY records; while the coordinator refuses
   * them, at most every SETTLE_EVERY more records or every poll timeout, not
   * once per record; past max_pending the partitions are paused (held). */
  size_t settle_at, max_pending;
  int held;
  struct an_kafka_stats stats;
  an_src_record_fn fn;
  void *user_data;
  int fnrc;
  char *err;
  size_t errlen;
};

static struct part *find_part(struct consumer *c, int32_t id) {
  for (size_t i = 0; i < c->nparts; i++)
    if (c->parts[i].id == id) return &c->parts[i];
  return NULL;
}

/* Sets the start offsets of `list` from the options (earliest, latest, or by time). */
static int set_start(struct consumer *c, rd_kafka_topic_partition_list_t *list) {
  for (int i = 0; i < list->cnt; i++)
    list->elems[i].offset = c->o->from == AN_FROM_LATEST ? RD_KAFKA_OFFSET_END
                          : c->o->from == AN_FROM_TIME   ? c->o->from_ms
                                                         : RD_KAFKA_OFFSET_BEGINNING;
  if (c->o->from != AN_FROM_TIME) return 0;
  rd_kafka_resp_err_t e = rd_kafka_offsets_for_times(c->rk, list, 10000);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
    return cut_errf(c->err, c->errlen, CUT_ERR_KAFKA, "offsets for --from time: %s",
                    rd_kafka_err2str(e));
  /* No answer for a partition (no message that new, or a broker that cannot
   * look up times): read it from the beginning; older messages are skipped
   * by their timestamps as they arrive. */
  for (int i = 0; i < list->cnt; i++)
    if (list->elems[i].offset < 0) list->elems[i].offset = RD_KAFKA_OFFSET_BEGINNING;
  return 0;
}

/* Remembers which partitions this consumer reads, so it knows when all are done. */
static int track(struct consumer *c, const rd_kafka_topic_partition_list_t *list) {
  free(c->parts);
  c->parts = calloc((size_t)list->cnt + 1, sizeof *c->parts);
  if (c->parts == NULL) return CUT_ERR_NOMEM;
  c->nparts = (size_t)list->cnt;
  c->ndone = 0;
  for (int i = 0; i < list->cnt; i++) {
    c->parts[i].id = list->elems[i].partition;
    c->parts[i].next = c->parts[i].committed = -1;
  }
  return 0;
}

static void feed_pending(struct consumer *c) {
  for (size_t i = 0; i < c->npend; i++) {
    if (c->fnrc == 0)
      c->fnrc = c->fn(c->pend[i], c->user_data);
    else
      an_record_free(c->pend[i]);
  }
  c->npend = 0;
}

#define SETTLE_EVERY 1000u
#define PENDING_MAX 100000u

/* Pauses (on = 1) or resumes the partitions of the assignment that have not
 * reached their end (those paused at --until stay paused). */
static void hold_partitions(struct consumer *c, int on) {
  rd_kafka_topic_partition_list_t *a = NULL;
  if (rd_kafka_assignment(c->rk, &a) != RD_KAFKA_RESP_ERR_NO_ERROR || a == NULL) return;
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(a->cnt + 1);
  for (int i = 0; i < a->cnt; i++) {
    struct part *p = find_part(c, a->elems[i].partition);
    if (p == NULL || !p->done) rd_kafka_topic_partition_list_add(l, a->elems[i].topic, a->elems[i].partition);
  }
  if (l->cnt > 0) {
    if (on)
      rd_kafka_pause_partitions(c->rk, l);
    else
      rd_kafka_resume_partitions(c->rk, l);
  }
  rd_kafka_topic_partition_list_destroy(l);
  rd_kafka_topic_partition_list_destroy(a);
  c->held = on;
  if (on) c->stats.holds++;
}

static void publish_stats(struct consumer *c) {
  if (c->o->stats != NULL) *c->o->stats = c->stats;
}

/* Group mode: commits synchronously the exact offsets of everything read,
 * then counts the pending records. When the coordinator refuses the commit
 * (as during a rebalance) `how` says what becomes of them. */
static void settle(struct consumer *c, enum on_refusal how) {
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)c->nparts + 1);
  for (size_t i = 0; i < c->nparts; i++)
    if (c->parts[i].next >= 0 && c->parts[i].next != c->parts[i].committed)
      rd_kafka_topic_partition_list_add(l, c->o->topic, c->parts[i].id)->offset = c->parts[i].next;
  rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
  if (l->cnt > 0) {
    c->stats.commits++;
    e = rd_kafka_commit(c->rk, l, 0);
    for (int i = 0; e == RD_KAFKA_RESP_ERR_NO_ERROR && i < l->cnt; i++)
      if (l->elems[i].err != RD_KAFKA_RESP_ERR_NO_ERROR) e = l->elems[i].err;
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) c->stats.commits_refused++;
  }
  if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
    for (int i = 0; i < l->cnt; i++) {
      struct part *p = find_part(c, l->elems[i].partition);
      if (p != NULL) p->committed = l->elems[i].offset;
    }
    feed_pending(c);
    c->settle_at = SETTLE_EVERY;
    if (c->held && !c->closing) {
      log_info("analyze", "offset commits go through again; reading on");
      hold_partitions(c, 0);
    }
  } else if (how == KEEP_PENDING) {
    /* try again after SETTLE_EVERY more records (or the next poll timeout) */
    c->settle_at = c->npend + SETTLE_EVERY;
    if (c->npend >= c->max_pending && !c->held && !c->closing) {
      log_warn("analyze", "offset commit refused: %s; %zu records wait for a commit: pausing the "
                          "partitions until one goes through", rd_kafka_err2str(e), c->npend);
      hold_partitions(c, 1);
    }
  } else if (how == DROP_PENDING) {
    log_warn("analyze", "offset commit refused: %s; %zu records read by this member are left to "
                        "the partitions' next owner", rd_kafka_err2str(e), c->npend);
    for (size_t i = 0; i < c->npend; i++) an_record_free(c->pend[i]);
    c->npend = 0;
    c->settle_at = SETTLE_EVERY;
    if (c->held) hold_partitions(c, 0);
  } else if (how == COUNT_PENDING) {
    log_warn("analyze", "offset commit failed: %s (another group member may read %zu records "
                        "again)", rd_kafka_err2str(e), c->npend);
    feed_pending(c);
  }
  rd_kafka_topic_partition_list_destroy(l);
}

static int add_pending(struct consumer *c, struct an_record *rec) {
  if (c->npend + 1 > c->stats.pending_peak) c->stats.pending_peak = c->npend + 1;
  if (c->npend == c->pendcap) {
    size_t cap = c->pendcap ? 2 * c->pendcap : 256;
    struct an_record **np = realloc(c->pend, cap * sizeof *np);
    if (np == NULL) {
      an_record_free(rec);
      return CUT_ERR_NOMEM;
    }
    c->pend = np;
    c->pendcap = cap;
  }
  c->pend[c->npend++] = rec;
  return 0;
}

static void on_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                            rd_kafka_topic_partition_list_t *parts, void *opaque) {
  struct consumer *c = opaque;
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    /* A group continues from its committed offsets; --from only decides
     * where a partition without one starts (auto.offset.reset, and older
     * messages are skipped by timestamp). */
    for (int i = 0; i < parts->cnt; i++) parts->elems[i].offset = RD_KAFKA_OFFSET_INVALID;
    if (track(c, parts) != 0) c->failed = 1;
    rd_kafka_assign(rk, parts);
    c->assigned = 1;
  } else {
    /* Commit what was read before the partitions move (maybe to another
     * member), and count it only if the commit holds: else the next owner
     * reads it from the last committed offset, and counts it instead. */
    settle(c, c->closing ? COUNT_PENDING : DROP_PENDING);
    c->revokes++;
    rd_kafka_assign(rk, NULL);
    c->nparts = c->ndone = 0;
    c->assigned = 0;
  }
}

static void mark_done(struct consumer *c, int32_t partition) {
  struct part *p = find_part(c, partition);
  if (p != NULL && !p->done) {
    p->done = 1;
    c->ndone++;
  }
}

/* Partition ends count only from the start: a partition that is empty when
 * assigned reports its end at once. */
static int all_done(const struct consumer *c) {
  return !c->o->follow && c->assigned && c->ndone == c->nparts;
}

static int conf_set(rd_kafka_conf_t *conf, const char *k, const char *v, char *err, size_t errlen) {
  char e[256];
  if (rd_kafka_conf_set(conf, k, v, e, sizeof e) != RD_KAFKA_CONF_OK)
    return cut_errf(err, errlen, CUT_ERR_KAFKA, "%s=%s: %s", k, v, e);
  return 0;
}

/* How many skipped messages are named in the log; the rest are only counted. */
#define SKIP_LOG_MAX 5

static const char *skip_reason(int drc, const void *payload, size_t len) {
  if (drc == CUT_ERR_UNSUPPORTED)
    return "written with another schema (its fingerprint differs from pair.avsc)";
  if (drc == CUT_ERR_PARSE)
    return payload == NULL || len < 10 ? "too short for an Avro single-object record"
                                       : "not an Avro single-object record (no C3 01 marker)";
  return "a damaged Pair record";
}

int an_src_kafka(const struct an_kafka_opts *o, an_src_record_fn fn, void *user_data,
                 uint64_t *skipped, char *err, size_t errlen) {
  struct consumer c;
  struct rec_codec *codec = NULL;
  rd_kafka_topic_partition_list_t *list = NULL;
  const struct rd_kafka_metadata *md = NULL;
  char e[512], group[64];
  int rc;
  memset(&c, 0, sizeof c);
  c.o = o;
  c.settle_at = SETTLE_EVERY;
  c.max_pending = o->max_pending ? o->max_pending : PENDING_MAX;
  c.err = err;
  c.errlen = errlen;
  c.fn = fn;
  c.user_data = user_data;
  *skipped = 0;
  if ((rc = rec_codec_new(&codec, e, sizeof e)) != 0)
    return cut_errf(err, errlen, rc, "pair schema: %s", e);

  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  snprintf(group, sizeof group, "cutover-analyze-%ld", (long)getpid());
  if ((rc = conf_set(conf, "bootstrap.servers", o->bootstrap, err, errlen)) != 0 ||
      (rc = conf_set(conf, "group.id", o->group ? o->group : group, err, errlen)) != 0 ||
      (rc = conf_set(conf, "enable.partition.eof", "true", err, errlen)) != 0 ||
      (rc = conf_set(conf, "enable.auto.commit", "false", err, errlen)) != 0 ||
      (rc = conf_set(conf, "auto.offset.reset", o->from == AN_FROM_LATEST ? "latest" : "earliest",
                     err, errlen)) != 0 ||
      (rc = conf_set(conf, "log_level", "3", err, errlen)) != 0) {
    rd_kafka_conf_destroy(conf);
    rec_codec_free(codec);
    return rc;
  }
  for (size_t i = 0; i < o->nproperties; i++) {
    const char *eq = strchr(o->properties[i], '=');
    char key[256];
    if (eq == NULL || (size_t)(eq - o->properties[i]) >= sizeof key) {
      rc = cut_errf(err, errlen, CUT_ERR_INVALID, "--property %s: expected KEY=VALUE",
                    o->properties[i]);
    } else {
      memcpy(key, o->properties[i], (size_t)(eq - o->properties[i]));
      key[eq - o->properties[i]] = '\0';
      rc = conf_set(conf, key, eq + 1, err, errlen);
    }
    if (rc == 0) continue;
    rd_kafka_conf_destroy(conf);
    rec_codec_free(codec);
    return rc;
  }
  rd_kafka_conf_set_opaque(conf, &c);
  if (o->group != NULL) rd_kafka_conf_set_rebalance_cb(conf, on_rebalance_cb);
  c.rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, e, sizeof e);
  if (c.rk == NULL) {
    rd_kafka_conf_destroy(conf);
    rec_codec_free(codec);
    return cut_errf(err, errlen, CUT_ERR_KAFKA, "consumer: %s", e);
  }
  rd_kafka_poll_set_consumer(c.rk);
  list = rd_kafka_topic_partition_list_new(16);

  if (o->group != NULL) {
    rd_kafka_topic_partition_list_add(list, o->topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t ke = rd_kafka_subscribe(c.rk, list);
    if (ke != RD_KAFKA_RESP_ERR_NO_ERROR) {
      rc = cut_errf(err, errlen, CUT_ERR_KAFKA, "subscribe %s: %s", o->topic, rd_kafka_err2str(ke));
      goto out;
    }
  } else {
    /* Without a group: every partition of the topic, from the metadata. */
    rd_kafka_topic_t *t = rd_kafka_topic_new(c.rk, o->topic, NULL);
    rd_kafka_resp_err_t ke = rd_kafka_metadata(c.rk, 0, t, &md, 5000);
    rd_kafka_topic_destroy(t);
    if (ke != RD_KAFKA_RESP_ERR_NO_ERROR || md->topic_cnt != 1 || md->topics[0].err != 0) {
      rc = cut_errf(err, errlen, CUT_ERR_KAFKA, "topic %s: %s", o->topic,
                    rd_kafka_err2str(ke != RD_KAFKA_RESP_ERR_NO_ERROR ? ke : md && md->topic_cnt == 1 ? md->topics[0].err : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC));
      goto out;
    }
    for (int i = 0; i < md->topics[0].partition_cnt; i++)
      rd_kafka_topic_partition_list_add(list, o->topic, md->topics[0].partitions[i].id);
    if ((rc = set_start(&c, list)) != 0 || (rc = track(&c, list)) != 0) goto out;
    ke = rd_kafka_assign(c.rk, list);
    if (ke != RD_KAFKA_RESP_ERR_NO_ERROR) {
      rc = cut_errf(err, errlen, CUT_ERR_KAFKA, "assign: %s", rd_kafka_err2str(ke));
      goto out;
    }
    c.assigned = 1;
  }

  rc = 0;
  unsigned revokes_seen;
again:
  while (rc == 0 && c.fnrc == 0 && !all_done(&c) && !(o->stop && *o->stop) && !c.failed) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(c.rk, 200);
    if (m == NULL) {
      if (o->group != NULL) settle(&c, KEEP_PENDING);
      continue;
    }
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      mark_done(&c, m->partition);
      if (o->group != NULL) settle(&c, KEEP_PENDING);
    } else if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      if (m->err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC || m->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
          m->err == RD_KAFKA_RESP_ERR__FATAL || m->err == RD_KAFKA_RESP_ERR__AUTHENTICATION)
        rc = cut_errf(err, errlen, CUT_ERR_KAFKA, "%s", rd_kafka_message_errstr(m));
    } else {
      rd_kafka_timestamp_type_t tt;
      int64_t ts = rd_kafka_message_timestamp(m, &tt);
      struct part *p = find_part(&c, m->partition);
      if (p != NULL && !p->done) p->next = m->offset + 1;
      if (o->group != NULL && p == NULL) {
        /* a late message of a partition no longer assigned: its next owner reads it */
      } else if (o->from == AN_FROM_TIME && ts >= 0 && ts < o->from_ms) {
        /* older than --from: skip */
      } else if (o->until_ms > 0 && ts > o->until_ms) {
        /* Past --until: this partition is finished. */
        if (p != NULL && !p->done) {
          rd_kafka_topic_partition_list_t *one = rd_kafka_topic_partition_list_new(1);
          rd_kafka_topic_partition_list_add(one, o->topic, m->partition);
          rd_kafka_pause_partitions(c.rk, one);
          rd_kafka_topic_partition_list_destroy(one);
          mark_done(&c, m->partition);
        }
      } else if (p == NULL || !p->done) {
        struct rec_pair *pair = NULL;
        int drc = rec_codec_decode(codec, m->payload, m->len, &pair);
        if (drc == CUT_ERR_NOMEM) {
          rc = drc;
        } else if (drc != 0) {
          /* Not a Pair record of this schema: counted, and the first few are
           * named so that a wrong producer or a schema change can be found. */
          if ((*skipped)++ < SKIP_LOG_MAX)
            log_warn("analyze", "topic %s partition %" PRId32 " offset %" PRId64 ": %s; skipped",
                     o->topic, m->partition, m->offset, skip_reason(drc, m->payload, m->len));
        } else {
          struct an_record *rec = NULL;
          rc = record_from_pair(pair, &rec);
          rec_pair_free(pair);
          if (rc == 0) rc = o->group != NULL ? add_pending(&c, rec) : fn(rec, user_data);
          if (rc == 0 && c.npend >= c.settle_at) settle(&c, KEEP_PENDING);
        }
      }
    }
    rd_kafka_message_destroy(m);
  }
  if (c.failed && rc == 0) rc = CUT_ERR_KAFKA;
  if (o->group != NULL) {
    /* A commit refused at the end (a rebalance under way) is tried again
     * for a while; then the records are counted anyway (at least once). */
    revokes_seen = c.revokes;
    for (int i = 0; i < 25 && c.npend > 0 && c.revokes == revokes_seen; i++) {
      settle(&c, KEEP_PENDING);
      if (c.npend == 0) break;
      rd_kafka_message_t *m = rd_kafka_consumer_poll(c.rk, 200);
      if (m != NULL) rd_kafka_message_destroy(m);
    }
    /* A rebalance took the partitions meanwhile: the records not yet counted
     * were dropped for their next owner to read from the last commit, and
     * that owner may be this member again. So read on until the new
     * assignment is done too, instead of leaving them to nobody. */
    if (c.revokes != revokes_seen && rc == 0 && c.fnrc == 0 && !c.failed &&
        !(o->stop && *o->stop))
      goto again;
    c.closing = 1;
    settle(&c, COUNT_PENDING);
  }
  if (rc == 0) rc = c.fnrc;
out:
  publish_stats(&c);
  if (md != NULL) rd_kafka_metadata_destroy(md);
  if (list != NULL) rd_kafka_topic_partition_list_destroy(list);
  c.closing = 1;
  rd_kafka_consumer_close(c.rk);
  rd_kafka_destroy(c.rk);
  for (size_t i = 0; i < c.npend; i++) an_record_free(c.pend[i]);
  free(c.pend);
  free(c.parts);
  rec_codec_free(codec);
  return rc;
}

