/* dial_store_file: the local-file backend of the dial store (atomic replace + audit log). */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cut_err.h"
#include "common/cut_fs.h"
#include "dials/dial_store.h"

struct file_ctx {
  char *state;
  char *tmp;
  char *audit;
};

static int write_all(int fd, const char *p, size_t n) {
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* The directory holding `path`, for mkdir and fsync; caller frees. */
static char *dir_of(const char *path) {
  char *copy = strdup(path);
  if (!copy) return NULL;
  char *d = strdup(dirname(copy));
  free(copy);
  return d;
}

static int ensure_dir(const char *path, char *err, size_t errlen) {
  char *d = dir_of(path);
  if (!d) return CUT_ERR_NOMEM;
  int rc = cut_mkdir_p(d, 0755, err, errlen);
  free(d);
  return rc;
}

static int file_load(void *vctx, char **json, char *err, size_t errlen) {
  struct file_ctx *c = vctx;
  *json = NULL;
  FILE *f = fopen(c->state, "rb");
  if (!f) {
    if (errno == ENOENT) return 0;
    return cut_errf(err, errlen, CUT_ERR_IO, "cannot open %s: %s", c->state, strerror(errno));
  }
  size_t cap = 4096, len = 0;
  char *buf = malloc(cap);
  if (!buf) {
    fclose(f);
    return CUT_ERR_NOMEM;
  }
  size_t n;
  while ((n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
    len += n;
    if (cap - len - 1 == 0) {
      char *nb = realloc(buf, cap * 2);
      if (!nb) {
        free(buf);
        fclose(f);
        return CUT_ERR_NOMEM;
      }
      buf = nb;
      cap *= 2;
    }
  }
  int bad = ferror(f);
  fclose(f);
  if (bad) {
    free(buf);
    return cut_errf(err, errlen, CUT_ERR_IO, "cannot read %s", c->state);
  }
  buf[len] = '\0';
  *json = buf;
  return 0;
}

/* The state is replaced, never rewritten in place: a crash at any point
 * leaves either the old or the new file under the real name. */
static int file_save(void *vctx, const char *json, size_t len, char *err, size_t errlen) {
  struct file_ctx *c = vctx;
  int rc = ensure_dir(c->state, err, errlen);
  if (rc) return rc;
  int fd = open(c->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return cut_errf(err, errlen, CUT_ERR_IO, "cannot create %s: %s", c->tmp, strerror(errno));
  if (write_all(fd, json, len) != 0 || write_all(fd, "\n", 1) != 0 || fsync(fd) != 0) {
    int e = errno;
    close(fd);
    unlink(c->tmp);
    return cut_errf(err, errlen, CUT_ERR_IO, "cannot write %s: %s", c->tmp, strerror(e));
  }
  if (close(fd) != 0) {
    unlink(c->tmp);
    return cut_errf(err, errlen, CUT_ERR_IO, "cannot write %s: %s", c->tmp, strerror(errno));
  }
  if (rename(c->tmp, c->state) != 0) {
    int e = errno;
    unlink(c->tmp);
    return cut_errf(err, errlen, CUT_ERR_IO, "cannot rename %s: %s", c->tmp, strerror(e));
  }
  /* The rename is durable only once the directory entry is. */
  char *d = dir_of(c->state);
  if (!d) return CUT_ERR_NOMEM;
  int dfd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  rc = 0;
  if (dfd < 0 || fsync(dfd) != 0)
    rc = cut_errf(err, errlen, CUT_ERR_IO, "cannot sync directory %s: %s", d, strerror(errno));
  if (dfd >= 0) close(dfd);
  free(d);
  return rc;
}

static int file_audit(void *vctx, const char *line, size_t len, char *err, size_t errlen) {
  struct file_ctx *c = vctx;
  int rc = ensure_dir(c->audit, err, errlen);
  if (rc) return rc;
  int fd = open(c->audit, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0)
    return cut_errf(err, errlen, CUT_ERR_IO, "cannot open %s: %s", c->audit, strerror(errno));
  char *buf = malloc(len + 1);
  if (!buf) {
    close(fd);
    return CUT_ERR_NOMEM;
  }
  memcpy(buf, line, len);
  buf[len] = '\n';
  /* One write per record, so concurrent appenders never interleave lines. */
  rc = 0;
  if (write_all(fd, buf, len + 1) != 0 || fsync(fd) != 0)
    rc = cut_errf(err, errlen, CUT_ERR_IO, "cannot append to %s: %s", c->audit, strerror(errno));
  free(buf);
  close(fd);
  return rc;
}

static void file_close(void *vctx) {
  struct file_ctx *c = vctx;
  if (!c) return;
  free(c->state);
  free(c->tmp);
  free(c->audit);
  free(c);
}

static const struct dial_store_backend_ops file_ops = {
    .name = "file", .load = file_load, .save = file_save, .audit = file_audit, .close = file_close};

int dial_store_file_backend(struct dial_store_backend *out, const char *state_path,
                            const char *audit_path, char *err, size_t errlen) {
  if (!out || !state_path || !*state_path || !audit_path || !*audit_path)
    return cut_errf(err, errlen, CUT_ERR_INVALID, "dial store: state and audit paths are required");
  struct file_ctx *c = calloc(1, sizeof *c);
  if (!c) return CUT_ERR_NOMEM;
  size_t n = strlen(state_path);
  c->state = strdup(state_path);
  c->tmp = malloc(n + 5);
  c->audit = strdup(audit_path);
  if (!c->state || !c->tmp || !c->audit) {
    file_close(c);
    return CUT_ERR_NOMEM;
  }
  memcpy(c->tmp, state_path, n);
  memcpy(c->tmp + n, ".tmp", 5);
  out->ops = &file_ops;
  out->ctx = c;
  return 0;
}
