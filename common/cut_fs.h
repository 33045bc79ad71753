/* cut_fs: small file-system helpers shared by the modules that own state on disk. */
#ifndef CUT_FS_H
#define CUT_FS_H

#include <stddef.h>
#include <sys/types.h>

/* Creates `dir` and every missing parent (like `mkdir -p`), each with `mode`; an existing
 * directory is fine. Returns 0, or a negative CUT_ERR_* with a message in err naming the
 * directory that could not be created and why. */
int cut_mkdir_p(const char *dir, mode_t mode, char *err, size_t errlen);

#endif
