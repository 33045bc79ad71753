/* px_alog: per-worker lock-free rings drained by one writer thread. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/cut_err.h"
#include "proxy/px_alog.h"

struct slot {
  uint32_t len;
  char line[PX_ALOG_LINE_MAX];
};

struct ring {
  _Atomic size_t head; /* next slot the producer writes */
  char pad1[64 - sizeof(size_t)];
  _Atomic size_t tail; /* next slot the consumer reads */
  char pad2[64 - sizeof(size_t)];
  struct slot *slots;
  size_t mask;
};

struct px_alog {
  int fd;
  int own_fd;
  struct ring *rings;
  size_t nrings;
  pthread_t thread;
  int started;
  _Atomic int stop;
  _Atomic uint64_t dropped;
  _Atomic uint64_t written;
};

static size_t drain_once(struct px_alog *a, char *out, size_t cap) {
  size_t total = 0;
  for (size_t i = 0; i < a->nrings; i++) {
    struct ring *r = &a->rings[i];
    size_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    size_t head = atomic_load_explicit(&r->head, memory_order_acquire);
    size_t off = 0, n = 0;
    while (tail != head) {
      struct slot *s = &r->slots[tail & r->mask];
      if (off + s->len + 1 > cap) {
        if (off == 0)
          break;
        ssize_t w = write(a->fd, out, off);
        (void)w;
        off = 0;
      }
      memcpy(out + off, s->line, s->len);
      off += s->len;
      out[off++] = '\n';
      tail++;
      n++;
    }
    atomic_store_explicit(&r->tail, tail, memory_order_release);
    if (off) {
      size_t done = 0;
      while (done < off) {
        ssize_t w = write(a->fd, out + done, off - done);
        if (w < 0 && errno == EINTR)
          continue;
        if (w <= 0)
          break;
        done += (size_t)w;
      }
    }
    atomic_fetch_add(&a->written, n);
    total += n;
  }
  return total;
}

static void *writer_main(void *arg) {
  struct px_alog *a = arg;
  size_t cap = 256 * 1024;
  char *buf = malloc(cap);
  if (!buf)
    return NULL;
  for (;;) {
    int stopping = atomic_load(&a->stop);
    size_t n = drain_once(a, buf, cap);
    if (stopping && n == 0)
      break;
    if (n == 0) {
      struct timespec ts = {0, 10 * 1000 * 1000};
      nanosleep(&ts, NULL);
    }
  }
  free(buf);
  return NULL;
}

int px_alog_new(struct px_alog **out, const char *path, size_t nrings, size_t slots, char *err,
                size_t errlen) {
  *out = NULL;
  struct px_alog *a = calloc(1, sizeof *a);
  if (!a)
    return CUT_ERR_NOMEM;
  a->fd = -1;
  size_t cap = 1;
  while (cap < slots)
    cap <<= 1;
  a->nrings = nrings ? nrings : 1;
  a->rings = calloc(a->nrings, sizeof *a->rings);
  if (!a->rings)
    goto nomem;
  for (size_t i = 0; i < a->nrings; i++) {
    a->rings[i].slots = malloc(cap * sizeof(struct slot));
    if (!a->rings[i].slots)
      goto nomem;
    a->rings[i].mask = cap - 1;
  }
  if (strcmp(path, "-") == 0) {
    a->fd = STDOUT_FILENO;
  } else {
    a->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (a->fd < 0) {
      int e = errno;
      px_alog_free(a);
      return cut_errf(err, errlen, CUT_ERR_IO, "access log %s: %s", path, strerror(e));
    }
    a->own_fd = 1;
  }
  if (pthread_create(&a->thread, NULL, writer_main, a) != 0) {
    px_alog_free(a);
    return cut_errf(err, errlen, CUT_ERR_IO, "access log: cannot start writer thread");
  }
  a->started = 1;
  *out = a;
  return 0;
nomem:
  px_alog_free(a);
  return CUT_ERR_NOMEM;
}

void px_alog_free(struct px_alog *a) {
  if (!a)
    return;
  if (a->started) {
    atomic_store(&a->stop, 1);
    pthread_join(a->thread, NULL);
  }
  if (a->own_fd && a->fd >= 0)
    close(a->fd);
  if (a->rings)
    for (size_t i = 0; i < a->nrings; i++)
      free(a->rings[i].slots);
  free(a->rings);
  free(a);
}

int px_alog_write(struct px_alog *a, size_t ring, const char *line, size_t len) {
  struct ring *r = &a->rings[ring % a->nrings];
  size_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
  size_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
  if (len > PX_ALOG_LINE_MAX || head - tail > r->mask) {
    atomic_fetch_add_explicit(&a->dropped, 1, memory_order_relaxed);
    return CUT_ERR_FULL;
  }
  struct slot *s = &r->slots[head & r->mask];
  memcpy(s->line, line, len);
  s->len = (uint32_t)len;
  atomic_store_explicit(&r->head, head + 1, memory_order_release);
  return 0;
}

uint64_t px_alog_dropped(const struct px_alog *a) { return atomic_load(&a->dropped); }
uint64_t px_alog_written(const struct px_alog *a) { return atomic_load(&a->written); }

void px_json_str(char *buf, size_t cap, size_t *off, const char *s, size_t len) {
  static const char hex[] = "0123456789abcdef";
  size_t o = *off;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') {
      if (o + 2 > cap)
        break;
      buf[o++] = '\\';
      buf[o++] = (char)c;
    } else if (c < 0x20 || c == 0x7f) {
      if (o + 6 > cap)
        break;
      memcpy(buf + o, "\\u00", 4);
      buf[o + 4] = hex[c >> 4];
      buf[o + 5] = hex[c & 15];
      o += 6;
    } else {
      if (o + 1 > cap)
        break;
      buf[o++] = (char)c;
    }
  }
  *off = o;
}
