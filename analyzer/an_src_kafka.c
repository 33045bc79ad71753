/* an_src_kafka: consume Pair records from Kafka (single-object encoding). */
#include "analyzer/an_src.h"
#include "common/cut_err.h"

int an_src_kafka(const struct an_kafka_opts *o, an_src_record_fn fn, void *user_data,
                 uint64_t *skipped, char *err, size_t errlen) {
  (void)o;
  (void)fn;
  (void)user_data;
  (void)skipped;
  return cut_errf(err, errlen, CUT_ERR_UNSUPPORTED, "reading from Kafka is not built yet");
}
