/* rec_pairq: a bounded lock-free queue of finished pairs and the thread that encodes and submits them. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cut_err.h"
#include "common/cut_lfstack.h"
#include "replay/rec_avro.h"
#include "replay/rec_pairq.h"
#include "replay/rec_sink.h"

#define DEFAULT_MAX_PAIRS 8192
#define DEFAULT_MAX_BYTES (64u << 20)
#define DEFAULT_BATCH_WAIT_MS 2

/*
 * Producers push onto a lock-free stack (cut_lfstack.h); the thread takes the
 * whole stack at once in arrival order. The bounds are counters the producers
 * reserve before pushing. Sleeping uses a flag checked by the producers after
 * their push (the push, the flag and the thread's emptiness check are all
 * sequentially consistent, so either the producer sees the flag or the thread
 * sees the pair) and a condition variable.
 */
struct rec_pairq {
  struct rec_sink *sink;
  struct rec_codec *codec;
  struct cut_lfs pairs;               /* of rec_pair.qlink */
  _Atomic size_t n, bytes;            /* queued, reserved by producers */
  _Atomic uint64_t pushed, done;      /* totals, for flush */
  _Atomic int sleeping;
  _Atomic int stop;
  size_t max_pairs, max_bytes;
  unsigned batch_wait_ms;
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t more, idle;
};

static void sleep_ms(unsigned ms) {
  struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* Takes every queued pair and submits it; returns how many. */
static size_t drain(struct rec_pairq *q) {
  struct cut_lfs_node *fifo = cut_lfs_take_fifo(&q->pairs, memory_order_seq_cst);
  if (!fifo)
    return 0;
  size_t k = 0;
  while (fifo) {
    struct rec_pair *p = CUT_LFS_ENTRY(fifo, struct rec_pair, qlink);
    fifo = fifo->next;
    p->qlink.next = NULL;
    /* the next pair was written on a worker's CPU: its memory comes over
     * while this one is encoded, instead of line by line as it is read */
    if (fifo)
      rec_pair_prefetch(CUT_LFS_ENTRY(fifo, struct rec_pair, qlink));
    size_t bytes = rec_pair_mem_size(p);
    rec_stat_add(&q->sink->stats, pair_queue_depth, -1);
    rec_sink_submit_pair(q->sink, q->codec, p); /* counts its own failures */
    rec_pair_free(p);
    /* counted until its memory is given back */
    atomic_fetch_sub(&q->bytes, bytes);
    atomic_fetch_sub(&q->n, 1);
    k++;
  }
  atomic_fetch_add(&q->done, k);
  pthread_mutex_lock(&q->mu);
  pthread_cond_broadcast(&q->idle);
  pthread_mutex_unlock(&q->mu);
  return k;
}

static void *pairq_main(void *arg) {
  struct rec_pairq *q = arg;
  for (;;) {
    if (drain(q)) {
      if (!atomic_load(&q->stop))
        sleep_ms(q->batch_wait_ms); /* let the next batch gather */
      continue;
    }
    if (atomic_load(&q->stop))
      break; /* stopped, and nothing is left: pushes fail once stop is set */
    pthread_mutex_lock(&q->mu);
    atomic_store(&q->sleeping, 1);
    while (cut_lfs_empty(&q->pairs, memory_order_seq_cst) && !atomic_load(&q->stop) &&
           atomic_load(&q->sleeping))
      pthread_cond_wait(&q->more, &q->mu);
    atomic_store(&q->sleeping, 0);
    pthread_mutex_unlock(&q->mu);
  }
  return NULL;
}

static void wake(struct rec_pairq *q) {
  pthread_mutex_lock(&q->mu);
  atomic_store(&q->sleeping, 0);
  pthread_cond_signal(&q->more);
  pthread_mutex_unlock(&q->mu);
}

int rec_pairq_new(struct rec_pairq **out, struct rec_sink *sink, const struct rec_pairq_opts *o,
                  char *err, size_t errlen) {
  struct rec_pairq_opts d = {0};
  if (!o)
    o = &d;
  struct rec_pairq *q = calloc(1, sizeof *q);
  if (!q)
    return CUT_ERR_NOMEM;
  q->sink = sink;
  q->max_pairs = o->max_pairs ? o->max_pairs : DEFAULT_MAX_PAIRS;
  q->max_bytes = o->max_bytes ? o->max_bytes : DEFAULT_MAX_BYTES;
  q->batch_wait_ms = o->batch_wait_ms ? o->batch_wait_ms : DEFAULT_BATCH_WAIT_MS;
  int rc = rec_codec_new(&q->codec, err, errlen);
  if (rc < 0) {
    free(q);
    return rc;
  }
  pthread_mutex_init(&q->mu, NULL);
  pthread_cond_init(&q->more, NULL);
  pthread_cond_init(&q->idle, NULL);
  if (pthread_create(&q->thread, NULL, pairq_main, q) != 0) {
    pthread_cond_destroy(&q->idle);
    pthread_cond_destroy(&q->more);
    pthread_mutex_destroy(&q->mu);
    rec_codec_free(q->codec);
    free(q);
    return cut_errf(err, errlen, CUT_ERR_STATE, "cannot start the recording thread");
  }
  *out = q;
  return 0;
}

int rec_pairq_push(struct rec_pairq *q, struct rec_pair *p) {
  size_t bytes = rec_pair_mem_size(p);
  if (atomic_load_explicit(&q->stop, memory_order_relaxed))
    goto full;
  /* Reserve room first; the first pair always fits whatever its size. */
  if (atomic_fetch_add(&q->n, 1) >= q->max_pairs) {
    atomic_fetch_sub(&q->n, 1);
    goto full;
  }
  size_t before = atomic_fetch_add(&q->bytes, bytes);
  if (before > 0 && before + bytes > q->max_bytes) {
    atomic_fetch_sub(&q->bytes, bytes);
    atomic_fetch_sub(&q->n, 1);
    goto full;
  }
  p->opts = NULL; /* built: the worker's options may go away before it is encoded */
  rec_stat_add(&q->sink->stats, pair_queue_depth, 1);
  atomic_fetch_add(&q->pushed, 1);
  cut_lfs_push(&q->pairs, &p->qlink, memory_order_seq_cst); /* seq_cst: see `sleeping` */
  if (atomic_load(&q->sleeping) && atomic_exchange(&q->sleeping, 0))
    wake(q);
  return 0;
full:
  rec_stat_add(&q->sink->stats, pair_queue_full, 1);
  return CUT_ERR_FULL;
}

void rec_pairq_flush(struct rec_pairq *q) {
  uint64_t target = atomic_load(&q->pushed);
  pthread_mutex_lock(&q->mu);
  atomic_store(&q->sleeping, 0);
  pthread_cond_signal(&q->more);
  while (atomic_load(&q->done) < target) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 10 * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
      ts.tv_nsec -= 1000000000L;
      ts.tv_sec++;
    }
    pthread_cond_timedwait(&q->idle, &q->mu, &ts);
  }
  pthread_mutex_unlock(&q->mu);
}

void rec_pairq_free(struct rec_pairq *q) {
  if (!q)
    return;
  atomic_store(&q->stop, 1);
  wake(q);
  pthread_join(q->thread, NULL);
  drain(q); /* a push that raced with stop */
  pthread_cond_destroy(&q->idle);
  pthread_cond_destroy(&q->more);
  pthread_mutex_destroy(&q->mu);
  rec_codec_free(q->codec);
  free(q);
}
