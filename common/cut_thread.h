/* cut_thread: starts long-lived background threads at a lower CPU priority.
 *
 * Linux keeps the nice value per thread, and a new thread starts with its
 * creator's. cut_thread_run_niced runs set-up code on a short-lived thread
 * whose nice value is raised first, so every thread that code starts (and
 * every thread those start, such as librdkafka's) runs at that priority,
 * while the caller's thread and the threads it starts later keep theirs.
 */
#ifndef CUT_THREAD_H
#define CUT_THREAD_H

/* Runs fn(arg) on a new thread whose nice value is the caller's plus `nice`
 * (at most 19), waits for it and returns what fn returned. With nice <= 0 fn
 * runs on the calling thread. Returns CUT_ERR_STATE if no thread could be
 * started (fn has not run then). If the priority cannot be changed, fn still
 * runs, at the caller's priority, and *lowered (if not NULL) is set to 0;
 * otherwise to 1. */
int cut_thread_run_niced(int nice, int (*fn)(void *arg), void *arg, int *lowered);

/* The calling thread's nice value. */
int cut_thread_nice(void);

#endif
