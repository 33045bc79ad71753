/* Hand-built config snapshots for the dials unit tests (no YAML needed). */
#ifndef TEST_DIAL_FIXTURE_H
#define TEST_DIAL_FIXTURE_H

#include <stdint.h>
#include <string.h>

#include "config/config.h"
#include "dials/dial.h"

enum { B_OLD, B_NEW, B_CANARY, B_BASELINE, B_CONTROL, B_TREATMENT, B_N };

struct fixture {
  struct cfg cfg;
  struct cfg_backend backends[B_N];
  struct cfg_dial dials[2];
  struct cfg_dc_percent per_dc[2];
  uint32_t steps[5];
  struct cfg_experiment exps[1];
  struct cfg_cell cells[2];
  struct cfg_allocation allocs[1];
  char *regions[2];
  char *platforms[2];
  struct cfg_version_cmp vrange[2];
  struct cfg_route routes[4];
};

static inline struct cfg_key fx_key(enum cfg_key_kind kind, const char *name) {
  struct cfg_key k = {kind, (char *)name, (char *)name};
  return k;
}

/*
 * Routes: 0 = dial only ("checkout-v2" on header:x-device-id -> new),
 * 1 = experiment ("canary-eu", pool 2%) then the dial, 2 = allocation
 * ("ab-checkout", 50%, cells control/treatment 50/50, EU/US, ios/android,
 * >=8.2.0 <9), 3 = nothing (plain default).
 */
static inline void fx_init(struct fixture *f) {
  memset(f, 0, sizeof *f);
  static const char *bn[B_N] = {"old", "new", "canary", "baseline", "control", "treatment"};
  for (int i = 0; i < B_N; i++) f->backends[i].name = (char *)bn[i];
  f->cfg.backends = f->backends;
  f->cfg.nbackends = B_N;
  f->cfg.attributes.region = fx_key(CFG_KEY_HEADER, "x-region");
  f->cfg.attributes.platform = fx_key(CFG_KEY_HEADER, "x-platform");
  f->cfg.attributes.app_version = fx_key(CFG_KEY_HEADER, "x-app-version");

  struct cfg_dial *d = &f->dials[0];
  d->name = "checkout-v2";
  d->key = fx_key(CFG_KEY_HEADER, "x-device-id");
  d->ppm = 50000; /* 5% */
  d->to = "new";
  d->to_index = B_NEW;
  f->steps[0] = 10000;
  f->steps[1] = 50000;
  f->steps[2] = 250000;
  f->steps[3] = 500000;
  f->steps[4] = 1000000;
  d->steps = f->steps;
  d->nsteps = 5;
  f->per_dc[0] = (struct cfg_dc_percent){"eu-west", 20000};
  d->per_dc = f->per_dc;
  d->nper_dc = 1;
  struct cfg_dial *d2 = &f->dials[1];
  d2->name = "search";
  d2->key = fx_key(CFG_KEY_COOKIE, "did");
  d2->salt = "search-salt";
  d2->ppm = 100000;
  d2->to = "new";
  d2->to_index = B_NEW;
  f->cfg.dials = f->dials;
  f->cfg.ndials = 2;

  struct cfg_experiment *e = &f->exps[0];
  e->name = "canary-eu";
  e->key = fx_key(CFG_KEY_HEADER, "x-device-id");
  e->pool_ppm = 20000;
  e->canary = "canary";
  e->canary_index = B_CANARY;
  e->baseline = "baseline";
  e->baseline_index = B_BASELINE;
  e->autostart = 1;
  e->kpi = (struct cfg_kpi){0.02, 1.5, 60000, 100, 3};
  f->cfg.experiments = f->exps;
  f->cfg.nexperiments = 1;

  struct cfg_allocation *a = &f->allocs[0];
  a->name = "ab-checkout";
  a->key = fx_key(CFG_KEY_HEADER, "x-device-id");
  a->ppm = 500000;
  f->cells[0] = (struct cfg_cell){"control", 50, "control", B_CONTROL};
  f->cells[1] = (struct cfg_cell){"treatment", 50, "treatment", B_TREATMENT};
  a->cells = f->cells;
  a->ncells = 2;
  f->regions[0] = "eu";
  f->regions[1] = "us";
  a->regions = (struct cfg_strlist){f->regions, 2};
  f->platforms[0] = "ios";
  f->platforms[1] = "android";
  a->platforms = (struct cfg_strlist){f->platforms, 2};
  f->vrange[0] = (struct cfg_version_cmp){CFG_CMP_GE, {8, 2, 0}};
  f->vrange[1] = (struct cfg_version_cmp){CFG_CMP_LT, {9, 0, 0}};
  a->app_version = f->vrange;
  a->napp_version = 2;
  a->app_version_text = ">=8.2.0 <9";
  f->cfg.allocations = f->allocs;
  f->cfg.nallocations = 1;

  for (int i = 0; i < 4; i++) {
    struct cfg_route *r = &f->routes[i];
    r->name = (char *)(const char *[]){"dial", "exp", "ab", "plain"}[i];
    r->backend = "old";
    r->backend_index = B_OLD;
    r->dial_index = r->experiment_index = r->allocation_index = SIZE_MAX;
  }
  f->routes[0].dial = "checkout-v2";
  f->routes[0].dial_index = 0;
  f->routes[1].experiment = "canary-eu";
  f->routes[1].experiment_index = 0;
  f->routes[1].dial = "checkout-v2";
  f->routes[1].dial_index = 0;
  f->routes[2].allocation = "ab-checkout";
  f->routes[2].allocation_index = 0;
  f->cfg.routes = f->routes;
  f->cfg.nroutes = 4;
}

/* A request with up to 8 headers given as name/value C strings. */
struct fx_req {
  struct dial_request req;
  struct dial_header h[8];
};

static inline struct dial_slice fx_s(const char *s) {
  struct dial_slice x = {s, s ? strlen(s) : 0};
  return x;
}

static inline void fx_req_init(struct fx_req *r, const char *path) {
  memset(r, 0, sizeof *r);
  r->req.method = fx_s("GET");
  r->req.path = fx_s(path ? path : "/");
  r->req.headers = r->h;
}

static inline void fx_req_add(struct fx_req *r, const char *name, const char *value) {
  r->h[r->req.nheaders].name = fx_s(name);
  r->h[r->req.nheaders].value = fx_s(value);
  r->req.nheaders++;
}

#endif
