/* dial_store_int: the lock-free read side of the dial store, used by dial_decide and tests. */
#ifndef CUT_DIAL_STORE_INT_H
#define CUT_DIAL_STORE_INT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

struct dial_store;

#define DIAL_PPM_NONE UINT32_MAX /* "no value": no local-DC override, or no live value */

/*
 * Live values of one dial. Lives as long as the store (entries are never
 * freed before dial_store_free, even when a reload drops the dial), so a
 * reader holding a pointer to it can never see freed memory.
 */
struct dial_live {
  _Atomic uint32_t ppm;        /* global percentage */
  _Atomic uint32_t local_ppm;  /* this proxy's data center; DIAL_PPM_NONE = use ppm */
  _Atomic uint64_t no_key;     /* decisions without the dial's key */
};

/* Live state of one experiment: see enum exp_state in dials/exp.h. */
struct exp_live {
  _Atomic int state;
  _Atomic int64_t start;       /* effective start (epoch s); 0 = always */
  _Atomic int64_t end;         /* 0 = open-ended */
  _Atomic uint64_t no_key;
};

struct alloc_live {
  _Atomic uint64_t no_key;
  _Atomic uint64_t not_eligible;      /* restrictions not met (includes malformed) */
  _Atomic uint64_t malformed_version; /* app version header present but unparsable */
  _Atomic uint64_t allocated;
};

/* Entry for cfg->dials[i] (resp. experiments, allocations) of the snapshot
 * `cfg`, or NULL when the store does not know that object (then the config's
 * own values apply). Lock-free; O(1) when `cfg` is the store's current
 * snapshot, a name search otherwise. */
struct dial_live *dial_store_dial_live(const struct dial_store *s, const struct cfg *cfg, size_t i);
struct exp_live *dial_store_exp_live(const struct dial_store *s, const struct cfg *cfg, size_t i);
struct alloc_live *dial_store_alloc_live(const struct dial_store *s, const struct cfg *cfg,
                                         size_t i);

#endif
