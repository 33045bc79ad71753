/* cut_thread: set-up code run on a lower-priority thread (see cut_thread.h). */
#include <errno.h>
#include <pthread.h>
#include <sys/resource.h>

#include "common/cut_err.h"
#include "common/cut_thread.h"

struct niced {
  int nice;
  int (*fn)(void *arg);
  void *arg;
  int rc;
  int lowered;
};

/* The calling thread's nice value in *out; 0 when it could be read (-1 is a
 * valid value, so errno tells). */
static int read_nice(int *out) {
  errno = 0;
  *out = getpriority(PRIO_PROCESS, 0); /* on Linux: the calling thread */
  return errno ? -1 : 0;
}

int cut_thread_nice(void) {
  int n;
  return read_nice(&n) == 0 ? n : 0;
}

static void *niced_main(void *p) {
  struct niced *n = p;
  int base;
  if (read_nice(&base) == 0) { /* unknown base: better not to change it than to raise it */
    int want = base + n->nice;
    if (want > 19)
      want = 19;
    n->lowered = setpriority(PRIO_PROCESS, 0, want) == 0;
  }
  n->rc = n->fn(n->arg);
  return NULL;
}

int cut_thread_run_niced(int nice, int (*fn)(void *arg), void *arg, int *lowered) {
  if (lowered)
    *lowered = 0;
  if (nice <= 0)
    return fn(arg);
  struct niced n = {.nice = nice, .fn = fn, .arg = arg};
  pthread_t t;
  if (pthread_create(&t, NULL, niced_main, &n) != 0)
    return CUT_ERR_STATE;
  pthread_join(t, NULL);
  if (lowered)
    *lowered = n.lowered;
  return n.rc;
}
