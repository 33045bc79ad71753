/* rec_emit: test helper that runs the embedded broker and records N known pairs through the Kafka sink. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "replay/rec_avro.h"
#include "replay/rec_avrofile.h"
#include "replay/rec_kafka.h"

/*
 * rec_emit --topic T --count N [--partitions P] [--extra-topic T2]...
 *   Starts the embedded broker, prints "bootstrap=HOST:PORT", records N pairs
 *   through the Kafka sink, prints "delivered=D spilled=S dropped=X", then
 *   keeps the broker running until SIGTERM or SIGINT. SIGUSR1 takes the
 *   broker down (prints "broker down"), SIGUSR2 brings it back ("broker up").
 * rec_emit --spill-only DIR --count N
 *   Writes N pairs into spill files in DIR (as the proxy does when Kafka is
 *   unreachable), prints "spilled=N" and exits.
 * Pair i has correlation id "e2e-%05d" and the fields the e2e tests check.
 */

static struct rec_pair *make_pair(const struct rec_opts *o, int i) {
  char id[32], buf[128];
  snprintf(id, sizeof id, "e2e-%05d", i);
  struct rec_pair *p;
  struct rec_response *r;
  if (rec_pair_new(&p, o, id, 1700000000000000LL + i, "api"))
    return NULL;
  snprintf(buf, sizeof buf, "/items/%d?x=1", i);
  rec_pair_set_request(p, "GET", "example.com", buf);
  rec_pair_request_header(p, "Authorization", 13, "Bearer secret", 13);
  rec_pair_request_header(p, "x-trace", 7, "t1", 2);
  rec_pair_decision_set(p, "via", "dial");
  snprintf(buf, sizeof buf, "%d", i % 1000);
  rec_pair_decision_set(p, "bucket", buf);
  snprintf(buf, sizeof buf, "dev-%d", i);
  rec_pair_set_device_key(p, buf, strlen(buf));
  if (i % 2)
    rec_pair_request_body(p, (const uint8_t *)"request-body", 12);

  rec_pair_add_response(p, REC_SIDE_PRIMARY, "old", &r);
  rec_response_set_status(p, r, 200, "127.0.0.1:9001");
  rec_response_header(p, r, "content-type", 12, "application/json", 16);
  rec_response_header(p, r, "x-lineage", 9, "catalog=v812;streams=9f3a0c", 27);
  snprintf(buf, sizeof buf, "{\"id\":%d}", i);
  rec_response_body(p, r, (const uint8_t *)buf, strlen(buf));
  rec_response_finish(p, r, 1000 + i, NULL);

  rec_pair_add_response(p, REC_SIDE_SHADOW, "new", &r);
  if (i % 10 == 0) {
    rec_response_finish(p, r, 5000000, "timeout");
  } else {
    rec_response_set_status(p, r, 200, "127.0.0.1:9002");
    rec_response_header(p, r, "set-cookie", 10, "s=1", 3);
    rec_response_header(p, r, "x-lineage", 9, "catalog=v813", 12);
    snprintf(buf, sizeof buf, "{\"id\":%d,\"extra\":\"a long shadow body\"}", i);
    rec_response_body(p, r, (const uint8_t *)buf, strlen(buf));
    rec_response_finish(p, r, 2000 + i, NULL);
  }
  return p;
}

int main(int argc, char **argv) {
  const char *topic = "cutover.pairs", *spill_only = NULL;
  const char *extra[8];
  int nextra = 0, count = 0, partitions = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--topic"))
      topic = argv[i + 1];
    else if (!strcmp(argv[i], "--count"))
      count = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--partitions"))
      partitions = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--extra-topic") && nextra < 8)
      extra[nextra++] = argv[i + 1];
    else if (!strcmp(argv[i], "--spill-only"))
      spill_only = argv[i + 1];
    else {
      fprintf(stderr, "rec_emit: bad argument %s\n", argv[i]);
      return 2;
    }
  }
  log_setup(LOG_WARN, LOG_TEXT);
  /* Block the stop signals before any thread starts, then wait for them. */
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGUSR1);
  sigaddset(&stop, SIGUSR2);
  pthread_sigmask(SIG_BLOCK, &stop, NULL);

  char *lineage_names[] = {"x-lineage"};
  struct cfg_strlist lineage = {lineage_names, 1};
  struct rec_opts ro = {.max_body = 24, .lineage = &lineage, .source = "proxy"};
  struct rec_codec *codec;
  char err[512];
  if (rec_codec_new(&codec, err, sizeof err)) {
    fprintf(stderr, "rec_emit: %s\n", err);
    return 1;
  }

  if (spill_only) {
    struct rec_stats st = {0};
    struct rec_avrofile *f;
    struct rec_avrofile_opts o = {.dir = spill_only, .prefix = "spill", .segment_bytes = 16384};
    if (rec_avrofile_new(&f, &o, &st, &st.spilled, err, sizeof err)) {
      fprintf(stderr, "rec_emit: %s\n", err);
      return 1;
    }
    for (int i = 0; i < count; i++) {
      struct rec_pair *p = make_pair(&ro, i);
      uint8_t *buf;
      size_t len;
      if (!p || rec_codec_encode(codec, p, &buf, &len))
        return 1;
      rec_avrofile_push(f, buf + REC_SOE_HEADER_LEN, len - REC_SOE_HEADER_LEN);
      free(buf);
      rec_pair_free(p);
    }
    rec_avrofile_free(f);
    printf("spilled=%llu\n", (unsigned long long)atomic_load(&st.spilled));
    rec_codec_free(codec);
    return 0;
  }

  struct rec_broker *b;
  if (rec_broker_new(&b, 1, topic, partitions, err, sizeof err)) {
    fprintf(stderr, "rec_emit: %s\n", err);
    return 1;
  }
  for (int i = 0; i < nextra; i++)
    rec_broker_topic_create(b, extra[i], partitions);
  printf("bootstrap=%s\n", rec_broker_bootstrap(b));
  fflush(stdout);

  char spill_dir[] = "/tmp/rec-emit-spill-XXXXXX";
  if (!mkdtemp(spill_dir))
    return 1;
  struct rec_kafka_opts ko = {.brokers = rec_broker_bootstrap(b), .topic = topic, .spill_dir = spill_dir};
  struct rec_sink *s;
  if (rec_sink_kafka_new(&s, &ko, err, sizeof err)) {
    fprintf(stderr, "rec_emit: %s\n", err);
    return 1;
  }
  for (int i = 0; i < count; i++) {
    struct rec_pair *p = make_pair(&ro, i);
    if (!p)
      return 1;
    rec_sink_submit_pair(s, codec, p);
    rec_pair_free(p);
  }
  rec_sink_flush(s, 20000);
  struct rec_stats_view v;
  rec_sink_stats(s, &v);
  printf("delivered=%llu spilled=%llu dropped=%llu\n", (unsigned long long)v.delivered,
         (unsigned long long)v.spilled, (unsigned long long)v.dropped_total);
  fflush(stdout);
  rec_sink_free(s);
  rmdir(spill_dir);

  for (;;) {
    int sig = 0;
    sigwait(&stop, &sig);
    if (sig == SIGUSR1 || sig == SIGUSR2) {
      int rc = sig == SIGUSR1 ? rec_broker_set_down(b, 1) : rec_broker_set_up(b, 1);
      printf("broker %s%s\n", sig == SIGUSR1 ? "down" : "up", rc ? " (failed)" : "");
      fflush(stdout);
      continue;
    }
    break;
  }
  rec_broker_free(b);
  rec_codec_free(codec);
  return 0;
}
