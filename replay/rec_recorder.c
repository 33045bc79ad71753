/* rec_recorder: picks and owns the sink (and the embedded broker) from the recording config. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cut_err.h"
#include "common/cut_thread.h"
#include "common/log.h"
#include "replay/rec_kafka.h"
#include "replay/rec_pairq.h"
#include "replay/rec_recorder.h"

#define EMBEDDED_PARTITIONS 4

struct rec_recorder {
  struct rec_broker *broker;
  struct rec_sink *sink;
  char *bootstrap;
};

static int build(struct rec_recorder *r, const struct cfg_recording *rc, char *err,
                 size_t errlen) {
  int rc2 = 0;
  switch (rc->sink) {
  case CFG_SINK_NONE:
    break;
  case CFG_SINK_FILE:
    rc2 = rec_sink_file_new(&r->sink, rc->file_dir ? rc->file_dir : "run/records",
                            rc->spill_segment_bytes, err, errlen);
    break;
  case CFG_SINK_KAFKA: {
    const char *topic = rc->topic ? rc->topic : "cutover.pairs";
    const char *brokers = rc->brokers;
    if (!brokers || !strcmp(brokers, "embedded")) {
      rc2 = rec_broker_new(&r->broker, 1, topic, EMBEDDED_PARTITIONS, err, errlen);
      if (rc2)
        break;
      brokers = rec_broker_bootstrap(r->broker);
      log_info("rec", "embedded Kafka broker at %s (topic %s; loopback only, about 5 MiB kept per partition)",
               brokers, topic);
    }
    r->bootstrap = strdup(brokers);
    if (!r->bootstrap) {
      rc2 = CUT_ERR_NOMEM;
      break;
    }
    struct rec_kafka_opts ko;
    rec_kafka_opts_from_cfg(&ko, rc, r->bootstrap);
    ko.topic = topic;
    if (!ko.spill_dir)
      ko.spill_dir = "run/spill";
    rc2 = rec_sink_kafka_new(&r->sink, &ko, err, errlen);
    break;
  }
  }
  /* Encoding and producing happen on the recording thread, not on the workers. */
  if (!rc2 && r->sink)
    rc2 = rec_sink_start_thread(r->sink, NULL, err, errlen);
  return rc2;
}

struct build_args {
  struct rec_recorder *r;
  const struct cfg_recording *rc;
  char *err;
  size_t errlen;
};

static int build_cb(void *arg) {
  struct build_args *a = arg;
  return build(a->r, a->rc, a->err, a->errlen);
}

int rec_recorder_new(struct rec_recorder **out, const struct cfg_recording *rc, char *err,
                     size_t errlen) {
  if (err && errlen)
    err[0] = '\0';
  struct rec_recorder *r = calloc(1, sizeof *r);
  if (!r)
    return CUT_ERR_NOMEM;
  /* Every thread the sink and the broker start (the recording thread, the
   * delivery-report poller, the spill writer, librdkafka's and the mock
   * cluster's) inherits the lower priority; the workers keep theirs. */
  struct build_args a = {r, rc, err, errlen};
  int lowered;
  int rc2 = cut_thread_run_niced((int)rc->nice, build_cb, &a, &lowered);
  if (rc2 == 0 && rc->nice > 0 && !lowered)
    log_warn("rec", "cannot lower the recording threads' priority; they run at the workers'");
  if (rc2) {
    if (err && errlen && !err[0])
      snprintf(err, errlen, "cannot start the recording threads: %s", cut_strerror(rc2));
    rec_recorder_free(r);
    return rc2;
  }
  *out = r;
  return 0;
}

const char *rec_recorder_bootstrap(const struct rec_recorder *r) { return r->bootstrap; }

int rec_recorder_embedded(const struct rec_recorder *r) { return r->broker != NULL; }

struct rec_sink *rec_recorder_sink(struct rec_recorder *r) { return r->sink; }

int rec_recorder_submit(struct rec_recorder *r, struct rec_codec *codec, struct rec_pair *p) {
  if (!r->sink)
    return 0;
  return rec_sink_submit_pair(r->sink, codec, p);
}

void rec_recorder_free(struct rec_recorder *r) {
  if (!r)
    return;
  rec_sink_free(r->sink); /* first: it may still deliver to the embedded broker */
  rec_broker_free(r->broker);
  free(r->bootstrap);
  free(r);
}
