#include "common/cut_fs.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "common/cut_err.h"

static int make_one(const char *path, mode_t mode, char *err, size_t errlen) {
  if (mkdir(path, mode) == 0) return 0;
  int e = errno;
  struct stat st;
  if (e == EEXIST && stat(path, &st) == 0) {
    if (S_ISDIR(st.st_mode)) return 0;
    return cut_errf(err, errlen, CUT_ERR_IO, "cannot create directory %s: exists and is not a directory",
                    path);
  }
  return cut_errf(err, errlen, CUT_ERR_IO, "cannot create directory %s: %s", path, strerror(e));
}

int cut_mkdir_p(const char *dir, mode_t mode, char *err, size_t errlen) {
  char path[4096];
  if (!dir || !*dir) return cut_errf(err, errlen, CUT_ERR_INVALID, "empty directory name");
  if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path)
    return cut_errf(err, errlen, CUT_ERR_INVALID, "directory name too long: %.64s...", dir);
  for (char *p = path + 1; *p; p++) {
    if (*p != '/' || p[-1] == '/') continue;
    *p = '\0';
    int rc = make_one(path, mode, err, errlen);
    *p = '/';
    if (rc != 0) return rc;
  }
  size_t n = strlen(path);
  while (n > 1 && path[n - 1] == '/') path[--n] = '\0';
  return make_one(path, mode, err, errlen);
}
