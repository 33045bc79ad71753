/* an_src_file: read Pair records from Avro container files with avro-c's generic values. */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <stdio.h>
#include <string.h>

#include <avro.h>

#include "analyzer/an_src.h"
#include "common/cut_err.h"
#include "replay/rec_avrofile.h"

static int read_one(const char *path, an_src_record_fn fn, void *user_data, char *err,
                    size_t errlen);

static int cmp_names(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A directory (a spill or file-sink directory): its *.avro files in name
 * order, which is the order they were written in. */
static int read_dir(const char *path, an_src_record_fn fn, void *user_data, char *err,
                    size_t errlen) {
  DIR *d = opendir(path);
  if (d == NULL) return cut_errf(err, errlen, CUT_ERR_IO, "%s: %s", path, strerror(errno));
  char **names = NULL;
  size_t n = 0, cap = 0;
  int rc = 0;
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    size_t l = strlen(de->d_name);
    if (l < 6 || strcmp(de->d_name + l - 5, ".avro") != 0 || de->d_name[0] == '.') continue;
    if (n == cap) {
      cap = cap ? cap * 2 : 16;
      char **v = realloc(names, cap * sizeof *v);
      if (v == NULL) {
        rc = CUT_ERR_NOMEM;
        break;
      }
      names = v;
    }
    if (asprintf(&names[n], "%s/%s", path, de->d_name) < 0) {
      rc = CUT_ERR_NOMEM;
      break;
    }
    n++;
  }
  closedir(d);
  if (rc == 0 && n > 1) qsort(names, n, sizeof *names, cmp_names);
  for (size_t i = 0; i < n && rc == 0; i++) rc = read_one(names[i], fn, user_data, err, errlen);
  for (size_t i = 0; i < n; i++) free(names[i]);
  free(names);
  return rc;
}

int an_src_file(const char *path, an_src_record_fn fn, void *user_data, char *err, size_t errlen) {
  struct stat st;
  if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return read_dir(path, fn, user_data, err, errlen);
  return read_one(path, fn, user_data, err, errlen);
}

static int read_one(const char *path, an_src_record_fn fn, void *user_data, char *err,
                    size_t errlen) {
  avro_file_reader_t reader;
  /* Check the header and the first block first: avro-c leaks what it
   * allocated when opening a file that is not a container fails. */
  FILE *probe = fopen(path, "rb");
  if (probe == NULL) return cut_errf(err, errlen, CUT_ERR_IO, "%s: %s", path, strerror(errno));
  int bad = rec_avrofile_check(probe);
  fclose(probe);
  if (bad)
    return cut_errf(err, errlen, CUT_ERR_AVRO,
                    "%s: not an Avro container file, or cut short in its header or first block",
                    path);
  if (avro_file_reader(path, &reader) != 0)
    return cut_errf(err, errlen, CUT_ERR_AVRO, "%s: not an Avro container file: %s", path,
                    avro_strerror());
  /* Read with the writer's schema and find fields by name: files from other
   * schema versions with the same field names still work. */
  avro_schema_t schema = avro_file_reader_get_writer_schema(reader); /* a new reference */
  avro_value_iface_t *iface = avro_generic_class_from_schema(schema);
  avro_schema_decref(schema); /* the class keeps its own */
  avro_value_t value;
  int rc = 0;
  if (iface == NULL || avro_generic_value_new(iface, &value) != 0) {
    if (iface) avro_value_iface_decref(iface);
    avro_file_reader_close(reader);
    return cut_errf(err, errlen, CUT_ERR_AVRO, "%s: %s", path, avro_strerror());
  }
  unsigned long n = 0;
  for (;;) {
    int r = avro_file_reader_read_value(reader, &value);
    if (r == EOF) break;
    if (r != 0) {
      rc = cut_errf(err, errlen, CUT_ERR_AVRO, "%s: record %lu: %s", path, n + 1, avro_strerror());
      break;
    }
    n++;
    struct an_record *rec = NULL;
    char inner[256];
    rc = an_record_from_avro(&value, &rec, inner, sizeof inner);
    if (rc != 0) {
      cut_errf(err, errlen, rc, "%s: record %lu: %s", path, n, inner);
      break;
    }
    if ((rc = fn(rec, user_data)) != 0) break;
    avro_value_reset(&value);
  }
  avro_value_decref(&value);
  avro_value_iface_decref(iface);
  avro_file_reader_close(reader);
  return rc;
}
