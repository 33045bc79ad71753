/* rec_drain: spill files -> Kafka, file by file, deleting only acknowledged files
 * (damaged ones are renamed to NAME.damaged once their readable part is acknowledged). */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "common/cut_err.h"
#include "common/log.h"
#include "replay/rec_avro.h"
#include "replay/rec_avrofile.h"
#include "replay/rec_drain.h"
#include "replay/rec_kafka.h"

struct file_progress {
  _Atomic uint64_t acked, failed;
  _Atomic int first_err;
};

struct produce_ctx {
  rd_kafka_t *rk;
  rd_kafka_topic_t *rkt;
  struct file_progress *fp;
  uint8_t *buf;
  size_t cap;
  uint64_t sent;
  int err;
};

static void on_delivery_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
  (void)rk;
  (void)opaque;
  struct file_progress *fp = m->_private;
  if (m->err) {
    int expected = 0;
    atomic_compare_exchange_strong(&fp->first_err, &expected, (int)m->err);
    atomic_fetch_add(&fp->failed, 1);
  } else {
    atomic_fetch_add(&fp->acked, 1);
  }
}

static int produce_cb(const uint8_t *rec, size_t len, void *ud) {
  struct produce_ctx *c = ud;
  const char *key;
  size_t keylen;
  if (rec_binary_correlation_id(rec, len, &key, &keylen))
    return CUT_ERR_AVRO;
  if (REC_SOE_HEADER_LEN + len > c->cap) {
    uint8_t *nb = realloc(c->buf, REC_SOE_HEADER_LEN + len);
    if (!nb)
      return CUT_ERR_NOMEM;
    c->buf = nb;
    c->cap = REC_SOE_HEADER_LEN + len;
  }
  rec_soe_header(c->buf);
  memcpy(c->buf + REC_SOE_HEADER_LEN, rec, len);
  for (;;) {
    if (rd_kafka_produce(c->rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, c->buf,
                         REC_SOE_HEADER_LEN + len, key, keylen, c->fp) == 0)
      break;
    if (rd_kafka_last_error() != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
      c->err = rd_kafka_last_error();
      return CUT_ERR_KAFKA;
    }
    rd_kafka_poll(c->rk, 100); /* the command line may wait for room */
  }
  c->sent++;
  rd_kafka_poll(c->rk, 0);
  return 0;
}

static int lock_dir(const char *dir, int *fd_out, char *err, size_t errlen) {
  char path[4096];
  snprintf(path, sizeof path, "%s/.drain.lock", dir);
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0)
    return cut_errf(err, errlen, CUT_ERR_IO, "%s: %s", path, strerror(errno));
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    close(fd);
    return cut_errf(err, errlen, CUT_ERR_STATE, "%s: another drain is running", dir);
  }
  *fd_out = fd;
  return 0;
}

int rec_drain(const struct rec_drain_opts *o, struct rec_stats *stats,
              struct rec_drain_result *res, char *err, size_t errlen) {
  memset(res, 0, sizeof *res);
  if (!o->dir || !o->brokers)
    return cut_errf(err, errlen, CUT_ERR_INVALID, "drain: a directory and brokers are needed");
  int lockfd = -1;
  int rc = lock_dir(o->dir, &lockfd, err, errlen);
  if (rc)
    return rc;
  char **files = NULL;
  rec_avrofile_recover(o->dir, "spill");
  long nfiles = rec_avrofile_list(o->dir, "spill", &files);
  if (nfiles < 0) {
    close(lockfd);
    return cut_errf(err, errlen, CUT_ERR_IO, "%s: %s", o->dir, strerror(errno));
  }
  res->files_left = (uint64_t)nfiles;
  rd_kafka_t *rk = NULL;
  rd_kafka_topic_t *rkt = NULL;
  struct produce_ctx pc = {0};
  char first_damage[1024] = "";
  if (nfiles == 0)
    goto out;

  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  rc = rec_kafka_conf_set(conf, "client.id", "cutover-drain", err, errlen);
  if (!rc)
    rc = rec_kafka_conf_producer(conf, o->props, o->nprops, o->brokers, err, errlen);
  if (rc) {
    rd_kafka_conf_destroy(conf);
    goto out;
  }
  rd_kafka_conf_set_dr_msg_cb(conf, on_delivery_cb);
  rec_kafka_conf_logging(conf);
  char errstr[512];
  rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
  if (!rk) {
    rd_kafka_conf_destroy(conf);
    rc = cut_errf(err, errlen, CUT_ERR_KAFKA, "kafka producer: %s", errstr);
    goto out;
  }
  rkt = rd_kafka_topic_new(rk, o->topic ? o->topic : "cutover.pairs", NULL);
  if (!rkt) {
    rc = cut_errf(err, errlen, CUT_ERR_KAFKA, "kafka topic: %s",
                  rd_kafka_err2str(rd_kafka_last_error()));
    goto out;
  }
  pc.rk = rk;
  pc.rkt = rkt;
  int timeout = o->file_timeout_ms ? o->file_timeout_ms : 60000;
  for (long i = 0; i < nfiles; i++) {
    struct file_progress fp = {0};
    pc.fp = &fp;
    pc.sent = 0;
    char ferr[512] = "";
    long n = rec_avrofile_each(files[i], produce_cb, &pc, ferr, sizeof ferr);
    /* Wait for every report of this file, also after a failure: the
     * reports point at `fp`, which lives on this stack frame. */
    rd_kafka_flush(rk, timeout);
    if (rd_kafka_outq_len(rk) > 0) {
      rd_kafka_purge(rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
      rd_kafka_flush(rk, 5000);
    }
    /* A damaged file: its readable records were published (the callback saw
     * every record before the first unreadable one). */
    int damaged = n == CUT_ERR_PARSE;
    if (damaged)
      n = (long)pc.sent;
    if (n < 0) {
      rc = n == CUT_ERR_KAFKA ? cut_errf(err, errlen, CUT_ERR_KAFKA, "%s: produce: %s", files[i],
                                         rd_kafka_err2str(pc.err))
                              : cut_errf(err, errlen, (int)n, "%s", ferr);
      goto out;
    }
    uint64_t acked = atomic_load(&fp.acked);
    if (acked != (uint64_t)n || atomic_load(&fp.failed)) {
      rc = cut_errf(err, errlen, CUT_ERR_KAFKA,
                    "%s: %llu of %ld records acknowledged (%s); the file is kept", files[i],
                    (unsigned long long)acked, n,
                    rd_kafka_err2str((rd_kafka_resp_err_t)atomic_load(&fp.first_err)));
      goto out;
    }
    if (damaged) {
      /* Kept for inspection under a name the drain never lists again, so
       * neither this file nor its readable records are published twice. */
      char dpath[4200];
      snprintf(dpath, sizeof dpath, "%s.damaged", files[i]);
      if (rename(files[i], dpath) != 0) {
        rc = cut_errf(err, errlen, CUT_ERR_IO, "%s: rename: %s", files[i], strerror(errno));
        goto out;
      }
      log_error("rec", "damaged spill file %s: %ld readable records published, renamed to %s",
                ferr, n, dpath);
      if (!res->files_damaged)
        snprintf(first_damage, sizeof first_damage,
                 "%s (%ld readable records published; file kept with the suffix .damaged)", ferr,
                 n);
      res->files_damaged++;
    } else if (unlink(files[i]) != 0) {
      rc = cut_errf(err, errlen, CUT_ERR_IO, "%s: %s", files[i], strerror(errno));
      goto out;
    }
    int dfd = open(o->dir, O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
      fsync(dfd);
      close(dfd);
    }
    if (!damaged)
      log_info("rec", "drained %s: %ld records", files[i], n);
    res->files_done++;
    res->files_left--;
    res->records += acked;
    if (stats)
      rec_stat_add(stats, drained, acked);
  }
  rc = 0;
  if (res->files_damaged)
    rc = cut_errf(err, errlen, CUT_ERR_PARSE, "%llu damaged spill file(s); first: %s",
                  (unsigned long long)res->files_damaged, first_damage);
out:
  free(pc.buf);
  if (rkt)
    rd_kafka_topic_destroy(rkt);
  if (rk)
    rd_kafka_destroy(rk);
  rec_avrofile_list_free(files);
  close(lockfd);
  return rc;
}
