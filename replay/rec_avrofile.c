/* rec_avrofile: a writer thread appending pair records to rotated Avro container files. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <avro.h>

#include "common/cut_err.h"
#include "common/cut_fs.h"
#include "common/log.h"
#include "replay/rec_avro.h"
#include "replay/rec_avrofile.h"

#define DEFAULT_SEGMENT (64ull << 20)
#define DEFAULT_QUEUE_RECORDS 65536
#define DEFAULT_QUEUE_BYTES (64ull << 20)
#define MIN_BLOCK (1u << 20)
/* Counted against max_bytes for a file not opened yet: its header (magic,
 * metadata with the schema JSON, sync marker) is about 3 KiB. */
#define HEADER_ESTIMATE 4096

struct item {
  uint8_t *buf;
  size_t len;
};

struct rec_avrofile {
  /* fixed at creation */
  char *dir;
  char *prefix;
  uint64_t segment_bytes, max_bytes, queue_bytes_max;
  size_t cap;
  struct rec_stats *stats;
  _Atomic uint64_t *written;
  avro_schema_t schema;
  pthread_t thread;
  int thread_started;

  /* shared, under mu */
  pthread_mutex_t mu;
  pthread_cond_t wake, done;
  struct item *q;
  size_t head, qn;
  uint64_t qbytes;
  uint64_t pushed, processed; /* sequence numbers for flush() */
  int stop, rotate_req;
  uint64_t rotations_done;

  /* writer thread only */
  struct item *batch;
  FILE *fp;
  avro_file_writer_t fw;
  char *part_path;
  size_t block_size;
  uint64_t cur_bytes;  /* on disk in the current file, after the last flush */
  uint64_t pending;    /* appended since the last flush (uncompressed) */
  uint64_t nrec;       /* records in the current file */
  uint64_t dir_bytes;  /* finished files of this prefix in the directory */
  time_t last_scan;
  unsigned seq;
};

static void drop(struct rec_avrofile *f, enum rec_drop_reason r) {
  rec_stat_add(f->stats, dropped[r], 1);
}

/* ---- directory helpers ---- */

static int has_suffix(const char *s, const char *suf) {
  size_t n = strlen(s), m = strlen(suf);
  return n >= m && strcmp(s + n - m, suf) == 0;
}

static int is_ours(const char *name, const char *prefix) {
  size_t pl = strlen(prefix);
  return strncmp(name, prefix, pl) == 0 && name[pl] == '-' && has_suffix(name, ".avro");
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static void fsync_dir(const char *dir);
static off_t complete_end(FILE *fp);

static int count_cb(const uint8_t *rec, size_t len, void *ud) {
  (void)rec;
  (void)len;
  (void)ud;
  return 0;
}

long rec_avrofile_recover(const char *dir, const char *prefix) {
  DIR *d = opendir(dir);
  if (!d)
    return CUT_ERR_IO;
  long recovered = 0;
  size_t pl = strlen(prefix);
  struct dirent *e;
  while ((e = readdir(d))) {
    if (strncmp(e->d_name, prefix, pl) != 0 || e->d_name[pl] != '-' ||
        !has_suffix(e->d_name, ".avro.part"))
      continue;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
      continue;
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) { /* a live writer's current file */
      close(fd);
      continue;
    }
    /* Cut off a block the crash left half-written, so that the recovered
     * file reads cleanly to its end (reading treats a torn block as damage). */
    FILE *fp = fdopen(dup(fd), "rb");
    off_t end = fp ? complete_end(fp) : -1;
    if (fp)
      fclose(fp);
    struct stat st;
    if (end > 0 && fstat(fd, &st) == 0 && end < st.st_size) {
      if (ftruncate(fd, end) == 0 && fsync(fd) == 0)
        log_warn("rec", "%s: dropped %lld bytes of a block left incomplete", path,
                 (long long)(st.st_size - end));
    }
    long n = rec_avrofile_each(path, count_cb, NULL, NULL, 0);
    if (n > 0) {
      char final[4096];
      snprintf(final, sizeof final, "%.*s", (int)(strlen(path) - strlen(".part")), path);
      if (rename(path, final) == 0) {
        log_warn("rec", "recovered %s (%ld records) left by an earlier run", final, n);
        recovered++;
      }
    } else if (n == 0 || n == CUT_ERR_PARSE) {
      unlink(path); /* not one complete block in it */
    } else {
      log_warn("rec", "%s: cannot recover (%s); left in place", path, cut_strerror((int)n));
    }
    close(fd);
  }
  closedir(d);
  fsync_dir(dir);
  return recovered;
}

long rec_avrofile_list(const char *dir, const char *prefix, char ***out) {
  DIR *d = opendir(dir);
  if (!d)
    return CUT_ERR_IO;
  size_t n = 0, cap = 16;
  char **v = malloc(cap * sizeof *v);
  struct dirent *e;
  while (v && (e = readdir(d))) {
    if (!is_ours(e->d_name, prefix))
      continue;
    if (n + 2 > cap) {
      char **nv = realloc(v, (cap *= 2) * sizeof *nv);
      if (!nv) {
        v[n] = NULL;
        rec_avrofile_list_free(v);
        v = NULL;
        break;
      }
      v = nv;
    }
    size_t len = strlen(dir) + strlen(e->d_name) + 2;
    if (!(v[n] = malloc(len))) {
      rec_avrofile_list_free(v);
      v = NULL;
      break;
    }
    snprintf(v[n], len, "%s/%s", dir, e->d_name);
    n++;
    v[n] = NULL;
  }
  closedir(d);
  if (!v)
    return CUT_ERR_NOMEM;
  v[n] = NULL;
  qsort(v, n, sizeof *v, cmp_str);
  *out = v;
  return (long)n;
}

void rec_avrofile_list_free(char **list) {
  if (!list)
    return;
  for (char **p = list; *p; p++)
    free(*p);
  free(list);
}

static void scan_dir(struct rec_avrofile *f) {
  char **list;
  long n = rec_avrofile_list(f->dir, f->prefix, &list);
  f->last_scan = time(NULL);
  if (n < 0)
    return;
  uint64_t total = 0;
  struct stat st;
  for (long i = 0; i < n; i++)
    if (stat(list[i], &st) == 0)
      total += (uint64_t)st.st_size;
  rec_avrofile_list_free(list);
  f->dir_bytes = total;
}

static void fsync_dir(const char *dir) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    fsync(fd);
    close(fd);
  }
}

/* ---- the current file (writer thread) ---- */

static void finish_file(struct rec_avrofile *f) {
  if (!f->fw)
    return;
  int rc = avro_file_writer_close(f->fw);
  f->fw = NULL;
  if (rc)
    log_error("rec", "closing %s: %s", f->part_path, avro_strerror());
  fflush(f->fp);
  fsync(fileno(f->fp));
  struct stat st;
  uint64_t size = fstat(fileno(f->fp), &st) == 0 ? (uint64_t)st.st_size : f->cur_bytes;
  fclose(f->fp);
  f->fp = NULL;
  if (f->nrec == 0) {
    unlink(f->part_path); /* avro-c cannot open a container without records */
  } else {
    char *final = strndup(f->part_path, strlen(f->part_path) - strlen(".part"));
    if (!final || rename(f->part_path, final) != 0)
      log_error("rec", "renaming %s: %s", f->part_path, strerror(errno));
    else
      f->dir_bytes += size;
    free(final);
    fsync_dir(f->dir);
  }
  free(f->part_path);
  f->part_path = NULL;
  f->cur_bytes = f->pending = f->nrec = 0;
}

static int open_file(struct rec_avrofile *f, size_t need) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  unsigned long long us = (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000;
  size_t len = strlen(f->dir) + strlen(f->prefix) + 64;
  f->part_path = malloc(len);
  if (!f->part_path)
    return CUT_ERR_NOMEM;
  snprintf(f->part_path, len, "%s/%s-%020llu-%06u.avro.part", f->dir, f->prefix, us, f->seq++ % 1000000u);
  f->fp = fopen(f->part_path, "wbx");
  if (f->fp && flock(fileno(f->fp), LOCK_EX | LOCK_NB) != 0) {
    fclose(f->fp); /* cannot happen for a file we just created; be safe */
    f->fp = NULL;
  }
  if (!f->fp) {
    log_error("rec", "creating %s: %s", f->part_path, strerror(errno));
    free(f->part_path);
    f->part_path = NULL;
    return CUT_ERR_IO;
  }
  f->block_size = MIN_BLOCK;
  while (f->block_size < need + 64)
    f->block_size *= 2;
  if (avro_file_writer_create_with_codec_fp(f->fp, f->part_path, 0, f->schema, &f->fw, "deflate",
                                            f->block_size)) {
    log_error("rec", "creating %s: %s", f->part_path, avro_strerror());
    f->fw = NULL;
    fclose(f->fp);
    f->fp = NULL;
    unlink(f->part_path);
    free(f->part_path);
    f->part_path = NULL;
    return CUT_ERR_AVRO;
  }
  fflush(f->fp);
  long pos = ftell(f->fp);
  f->cur_bytes = pos > 0 ? (uint64_t)pos : 0;
  f->pending = f->nrec = 0;
  return 0;
}

static void flush_file(struct rec_avrofile *f) {
  if (!f->fw)
    return;
  if (avro_file_writer_flush(f->fw))
    log_error("rec", "flushing %s: %s", f->part_path, avro_strerror());
  fflush(f->fp);
  long pos = ftell(f->fp);
  if (pos > 0)
    f->cur_bytes = (uint64_t)pos;
  f->pending = 0;
  if (f->cur_bytes >= f->segment_bytes)
    finish_file(f);
}

static void write_one(struct rec_avrofile *f, const uint8_t *buf, size_t len) {
  if (f->max_bytes) {
    uint64_t head = f->fw ? 0 : HEADER_ESTIMATE;
    uint64_t after = f->dir_bytes + f->cur_bytes + f->pending + head + len;
    if (after > f->max_bytes && time(NULL) != f->last_scan) {
      scan_dir(f); /* a drain may have removed files since */
      after = f->dir_bytes + f->cur_bytes + f->pending + head + len;
    }
    if (after > f->max_bytes) {
      drop(f, REC_DROP_SPILL_FULL);
      return;
    }
  }
  if (f->fw && len + 64 > f->block_size)
    finish_file(f); /* the next file gets a block large enough */
  if (!f->fw && open_file(f, len)) {
    drop(f, REC_DROP_IO);
    return;
  }
  if (avro_file_writer_append_encoded(f->fw, buf, (int64_t)len)) {
    log_error("rec", "writing %s: %s", f->part_path, avro_strerror());
    drop(f, REC_DROP_IO);
    return;
  }
  f->pending += len;
  f->nrec++;
  atomic_fetch_add_explicit(f->written, 1, memory_order_relaxed);
  if (f->cur_bytes + f->pending >= f->segment_bytes)
    flush_file(f);
}

static void *writer_main(void *arg) {
  struct rec_avrofile *f = arg;
  pthread_mutex_lock(&f->mu);
  for (;;) {
    while (f->qn == 0 && !f->stop && !f->rotate_req)
      pthread_cond_wait(&f->wake, &f->mu);
    size_t n = f->qn;
    for (size_t i = 0; i < n; i++)
      f->batch[i] = f->q[(f->head + i) % f->cap];
    f->head = (f->head + n) % f->cap;
    f->qn = 0;
    f->qbytes = 0;
    atomic_store_explicit(&f->stats->spill_queue_depth, 0, memory_order_relaxed);
    int rotate = f->rotate_req, stop = f->stop;
    pthread_mutex_unlock(&f->mu);

    for (size_t i = 0; i < n; i++) {
      write_one(f, f->batch[i].buf, f->batch[i].len);
      free(f->batch[i].buf);
    }
    flush_file(f);
    if (rotate || stop)
      finish_file(f);

    pthread_mutex_lock(&f->mu);
    f->processed += n;
    if (rotate) {
      f->rotate_req = 0;
      f->rotations_done++;
    }
    pthread_cond_broadcast(&f->done);
    if (stop && f->qn == 0)
      break;
  }
  pthread_mutex_unlock(&f->mu);
  return NULL;
}

/* ---- public ---- */

int rec_avrofile_new(struct rec_avrofile **out, const struct rec_avrofile_opts *o,
                     struct rec_stats *stats, _Atomic uint64_t *written, char *err,
                     size_t errlen) {
  if (!o->dir || !o->prefix || !stats || !written)
    return cut_errf(err, errlen, CUT_ERR_INVALID, "avro file writer: missing options");
  int rc = cut_mkdir_p(o->dir, 0755, err, errlen);
  if (rc != 0)
    return rc;
  struct rec_avrofile *f = calloc(1, sizeof *f);
  if (!f)
    return CUT_ERR_NOMEM;
  f->dir = strdup(o->dir);
  f->prefix = strdup(o->prefix);
  f->segment_bytes = o->segment_bytes ? o->segment_bytes : DEFAULT_SEGMENT;
  f->max_bytes = o->max_bytes;
  f->cap = o->queue_records ? o->queue_records : DEFAULT_QUEUE_RECORDS;
  f->queue_bytes_max = o->queue_bytes ? o->queue_bytes : DEFAULT_QUEUE_BYTES;
  f->stats = stats;
  f->written = written;
  f->q = calloc(f->cap, sizeof *f->q);
  f->batch = calloc(f->cap, sizeof *f->batch);
  pthread_mutex_init(&f->mu, NULL);
  pthread_cond_init(&f->wake, NULL);
  pthread_cond_init(&f->done, NULL);
  if (!f->dir || !f->prefix || !f->q || !f->batch) {
    rec_avrofile_free(f);
    return CUT_ERR_NOMEM;
  }
  size_t len;
  const char *text = rec_schema_text_get(&len);
  if (avro_schema_from_json_length(text, len, &f->schema)) {
    f->schema = NULL;
    rec_avrofile_free(f);
    return cut_errf(err, errlen, CUT_ERR_AVRO, "pair schema: %s", avro_strerror());
  }
  rec_avrofile_recover(f->dir, f->prefix);
  scan_dir(f);
  if (pthread_create(&f->thread, NULL, writer_main, f) != 0) {
    rec_avrofile_free(f);
    return cut_errf(err, errlen, CUT_ERR_NOMEM, "cannot start the writer thread");
  }
  f->thread_started = 1;
  *out = f;
  return 0;
}

int rec_avrofile_push(struct rec_avrofile *f, const uint8_t *rec, size_t len) {
  uint8_t *copy = malloc(len ? len : 1);
  if (!copy) {
    drop(f, REC_DROP_QUEUE_FULL);
    return CUT_ERR_NOMEM;
  }
  memcpy(copy, rec, len);
  pthread_mutex_lock(&f->mu);
  if (f->stop || f->qn == f->cap || f->qbytes + len > f->queue_bytes_max) {
    pthread_mutex_unlock(&f->mu);
    free(copy);
    drop(f, REC_DROP_QUEUE_FULL);
    return CUT_ERR_FULL;
  }
  f->q[(f->head + f->qn) % f->cap] = (struct item){copy, len};
  f->qn++;
  f->qbytes += len;
  f->pushed++;
  atomic_store_explicit(&f->stats->spill_queue_depth, (int64_t)f->qn, memory_order_relaxed);
  pthread_cond_signal(&f->wake);
  pthread_mutex_unlock(&f->mu);
  return 0;
}

void rec_avrofile_flush(struct rec_avrofile *f) {
  pthread_mutex_lock(&f->mu);
  uint64_t target = f->pushed;
  pthread_cond_signal(&f->wake);
  while (f->processed < target)
    pthread_cond_wait(&f->done, &f->mu);
  pthread_mutex_unlock(&f->mu);
}

void rec_avrofile_rotate(struct rec_avrofile *f) {
  pthread_mutex_lock(&f->mu);
  uint64_t target = f->rotations_done + 1;
  f->rotate_req = 1;
  pthread_cond_signal(&f->wake);
  while (f->rotations_done < target)
    pthread_cond_wait(&f->done, &f->mu);
  pthread_mutex_unlock(&f->mu);
}

void rec_avrofile_free(struct rec_avrofile *f) {
  if (!f)
    return;
  if (f->thread_started) {
    pthread_mutex_lock(&f->mu);
    f->stop = 1;
    pthread_cond_signal(&f->wake);
    pthread_mutex_unlock(&f->mu);
    pthread_join(f->thread, NULL);
  }
  finish_file(f);
  if (f->q)
    for (size_t i = 0; i < f->qn; i++)
      free(f->q[(f->head + i) % f->cap].buf);
  free(f->q);
  free(f->batch);
  if (f->schema)
    avro_schema_decref(f->schema);
  pthread_mutex_destroy(&f->mu);
  pthread_cond_destroy(&f->wake);
  pthread_cond_destroy(&f->done);
  free(f->dir);
  free(f->prefix);
  free(f);
}

/* ---- reading ---- */

/*
 * Checks the container's header and that its first block is complete before
 * avro-c opens it: avro-c 1.11.1 leaks memory when it fails to open a file
 * (a crash-truncated spill file, or a file that is not Avro). Returns 0 or -1.
 */
static int fp_varint(FILE *fp, int64_t *out) {
  uint64_t u = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    int c = getc(fp);
    if (c == EOF)
      return -1;
    u |= (uint64_t)(c & 0x7f) << shift;
    if (!(c & 0x80)) {
      *out = (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
      return 0;
    }
  }
  return -1;
}

static int fp_skip(FILE *fp, int64_t n, int64_t size) {
  long pos = ftell(fp);
  if (n < 0 || pos < 0 || n > size - pos)
    return -1;
  return fseek(fp, (long)n, SEEK_CUR);
}

/* Skips the container header (magic, metadata map) and reads the sync marker. */
static int skip_header(FILE *fp, int64_t size, char sync[16]) {
  char magic[4];
  int64_t n, len;
  if (fread(magic, 1, 4, fp) != 4 || memcmp(magic, "Obj\x01", 4))
    return -1;
  for (;;) { /* the metadata map */
    if (fp_varint(fp, &n))
      return -1;
    if (n == 0)
      break;
    if (n < 0) {
      if (n == INT64_MIN || fp_varint(fp, &len))
        return -1;
      n = -n;
    }
    for (int64_t i = 0; i < n; i++) /* key, then value */
      if (fp_varint(fp, &len) || fp_skip(fp, len, size) || fp_varint(fp, &len) ||
          fp_skip(fp, len, size))
        return -1;
  }
  return fread(sync, 1, 16, fp) == 16 ? 0 : -1;
}

/* Skips one block (count, byte size, data, sync marker); 0 when it is complete. */
static int skip_block(FILE *fp, int64_t size, const char sync[16]) {
  char sync2[16];
  int64_t n, len;
  if (fp_varint(fp, &n) || n <= 0 || fp_varint(fp, &len) || fp_skip(fp, len, size) ||
      fread(sync2, 1, 16, fp) != 16 || memcmp(sync, sync2, 16))
    return -1;
  return 0;
}

static int container_plausible(FILE *fp) {
  struct stat st;
  char sync[16];
  if (fstat(fileno(fp), &st) != 0 || skip_header(fp, st.st_size, sync) ||
      skip_block(fp, st.st_size, sync))
    return -1;
  rewind(fp);
  return 0;
}

int rec_avrofile_check(FILE *fp) {
  struct stat st;
  char sync[16];
  if (fstat(fileno(fp), &st) != 0 || skip_header(fp, st.st_size, sync))
    return -1;
  int c = getc(fp);
  if (c != EOF && (ungetc(c, fp) == EOF || skip_block(fp, st.st_size, sync)))
    return -1;
  rewind(fp);
  return 0;
}

/* The offset just past the last complete block of a container, 0 when it has
 * no complete block, -1 when it cannot be read. */
static off_t complete_end(FILE *fp) {
  struct stat st;
  char sync[16];
  if (fstat(fileno(fp), &st) != 0)
    return -1;
  if (skip_header(fp, st.st_size, sync))
    return 0;
  off_t end = 0;
  while (skip_block(fp, st.st_size, sync) == 0)
    end = ftello(fp);
  return end;
}

long rec_avrofile_each(const char *path, int (*cb)(const uint8_t *rec, size_t len, void *ud),
                       void *ud, char *err, size_t errlen) {
  FILE *fp = fopen(path, "rb");
  if (!fp)
    return cut_errf(err, errlen, CUT_ERR_IO, "%s: %s", path, strerror(errno));
  avro_file_reader_t r;
  /* avro-c fails to open a container without one complete block. */
  if (container_plausible(fp)) {
    fclose(fp);
    return cut_errf(err, errlen, CUT_ERR_PARSE, "%s: not an Avro container with a complete block",
                    path);
  }
  if (avro_file_reader_fp(fp, path, 1, &r))
    return cut_errf(err, errlen, CUT_ERR_PARSE, "%s: %s", path, avro_strerror());
  long count = 0;
  avro_schema_t ws = avro_file_reader_get_writer_schema(r);
  avro_schema_t ours = NULL;
  avro_value_iface_t *iface = NULL;
  avro_value_t v;
  int has_v = 0;
  uint8_t *buf = NULL;
  size_t cap = 0;
  size_t len;
  const char *text = rec_schema_text_get(&len);
  if (avro_schema_from_json_length(text, len, &ours)) {
    count = cut_errf(err, errlen, CUT_ERR_AVRO, "pair schema: %s", avro_strerror());
    ours = NULL;
    goto out;
  }
  if (!avro_schema_equal(ws, ours)) {
    count = cut_errf(err, errlen, CUT_ERR_AVRO, "%s: not written with the pair schema", path);
    goto out;
  }
  iface = avro_generic_class_from_schema(ws);
  if (!iface || avro_generic_value_new(iface, &v)) {
    count = cut_errf(err, errlen, CUT_ERR_AVRO, "%s: %s", path, avro_strerror());
    goto out;
  }
  has_v = 1;
  /* avro-c returns EOF after the last complete block; any other failure is a
   * damaged or truncated file, reported with the number of the bad record. */
  int rr = EOF;
  while ((rr = avro_file_reader_read_value(r, &v)) == 0) {
    size_t size;
    if (avro_value_sizeof(&v, &size)) {
      count = cut_errf(err, errlen, CUT_ERR_AVRO, "%s: %s", path, avro_strerror());
      goto out;
    }
    if (size > cap) {
      uint8_t *nb = realloc(buf, size);
      if (!nb) {
        count = CUT_ERR_NOMEM;
        goto out;
      }
      buf = nb;
      cap = size;
    }
    avro_writer_t w = avro_writer_memory((const char *)buf, (int64_t)size);
    int rc = w ? avro_value_write(w, &v) : ENOMEM;
    if (w)
      avro_writer_free(w);
    if (rc) {
      count = cut_errf(err, errlen, CUT_ERR_AVRO, "%s: %s", path, avro_strerror());
      goto out;
    }
    count++;
    int stop = cb(buf, size, ud);
    if (stop < 0) {
      count = stop;
      goto out;
    }
    avro_value_reset(&v);
  }
  if (rr != EOF)
    count = cut_errf(err, errlen, CUT_ERR_PARSE, "%s: record %ld: %s", path, count + 1,
                     avro_strerror());
out:
  free(buf);
  if (has_v)
    avro_value_decref(&v);
  if (iface)
    avro_value_iface_decref(iface);
  if (ours)
    avro_schema_decref(ours);
  /* avro-c 1.11.1 keeps one reference too many to the writer schema it
   * parsed from the file header (the schema leaks after close). Drop it
   * only when nothing else can hold one: we released ours above. */
  int extra_ref = ws && ws->refcount == 2;
  avro_file_reader_close(r);
  if (extra_ref)
    avro_schema_decref(ws);
  return count;
}
