/* px_admin_dials: admin operations over the dial store: JSON views, changes, gauges. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cut_err.h"
#include "common/metrics.h"
#include "config/config.h"
#include "dials/dial_store.h"
#include "dials/exp.h"
#include "proxy/px_admin_dials.h"

struct px_admin_dials {
  struct px_admin_dials_opts o;
};

int px_admin_dials_new(struct px_admin_dials **out, const struct px_admin_dials_opts *opts) {
  if (!out || !opts || !opts->store || !opts->holder)
    return CUT_ERR_INVALID;
  struct px_admin_dials *d = calloc(1, sizeof *d);
  if (!d)
    return CUT_ERR_NOMEM;
  d->o = *opts;
  *out = d;
  px_admin_dials_publish(d);
  return 0;
}

void px_admin_dials_free(struct px_admin_dials *d) { free(d); }

static json_t *percent_json(uint32_t ppm) { return json_real(ppm / 10000.0); }

static json_t *time_json(int64_t t) {
  if (!t)
    return json_null();
  char buf[32];
  time_t tt = (time_t)t;
  struct tm tm;
  gmtime_r(&tt, &tm);
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return json_string(buf);
}

/* The value in effect in this proxy's data center. */
static uint32_t effective_ppm(const struct px_admin_dials *d, const struct cfg *c,
                              const char *dial) {
  uint32_t g = 0, dc = DIAL_STORE_NONE;
  dial_store_get_percent(d->o.store, dial, NULL, &g);
  if (c->datacenter && dial_store_get_percent(d->o.store, dial, c->datacenter, &dc) == 0 &&
      dc != DIAL_STORE_NONE)
    return dc;
  return g;
}

static json_t *dial_json(const struct px_admin_dials *d, const struct cfg *c,
                         const struct cfg_dial *cd) {
  uint32_t g = 0;
  dial_store_get_percent(d->o.store, cd->name, NULL, &g);
  json_t *steps = json_array();
  for (size_t i = 0; i < cd->nsteps; i++)
    json_array_append_new(steps, percent_json(cd->steps[i]));
  json_t *dcs = json_object();
  /* Data centers named in the config, plus this proxy's own. */
  for (size_t i = 0; i <= cd->nper_dc; i++) {
    const char *dc = i < cd->nper_dc ? cd->per_dc[i].datacenter : c->datacenter;
    uint32_t v;
    if (dc && !json_object_get(dcs, dc) &&
        dial_store_get_percent(d->o.store, cd->name, dc, &v) == 0 && v != DIAL_STORE_NONE)
      json_object_set_new(dcs, dc, percent_json(v));
  }
  return json_pack("{s:s, s:o, s:o, s:o, s:s, s:s, s:o, s:o}", "name", cd->name, "percent",
                   percent_json(g), "effective_percent",
                   percent_json(effective_ppm(d, c, cd->name)), "config_percent",
                   percent_json(cd->ppm), "to", cd->to ? cd->to : "", "key",
                   cd->key.spec ? cd->key.spec : "", "steps", steps, "datacenters", dcs);
}

static int not_found(const struct cfg *c, const char *noun, const char *name, char *err,
                     size_t errlen) {
  size_t n = !strcmp(noun, "dial") ? c->ndials : c->nexperiments;
  const char **names = calloc(n ? n : 1, sizeof *names);
  if (!names)
    return cut_errf(err, errlen, CUT_ERR_NOT_FOUND, "unknown %s \"%s\"", noun, name);
  for (size_t i = 0; i < n; i++)
    names[i] = !strcmp(noun, "dial") ? c->dials[i].name : c->experiments[i].name;
  int rc = px_admin_unknown(err, errlen, noun, name, names, n);
  free(names);
  return rc;
}

static void publish_locked(struct px_admin_dials *d, const struct cfg *c) {
  struct met_registry *r = d->o.metrics;
  if (!r)
    return;
  struct met_family *fd = met_family_find(r, "cutover_dial_ratio");
  struct met_family *fe = met_family_find(r, "cutover_experiment_running");
  for (size_t i = 0; fd && i < c->ndials; i++)
    met_gauge_set(met_series_get(fd, (const char *const[]){c->dials[i].name}),
                  effective_ppm(d, c, c->dials[i].name));
  int64_t now = (int64_t)time(NULL);
  for (size_t i = 0; fe && i < c->nexperiments; i++) {
    struct dial_store_exp_info info;
    if (dial_store_exp_get(d->o.store, c->experiments[i].name, now, &info) == 0)
      met_gauge_set(met_series_get(fe, (const char *const[]){c->experiments[i].name}),
                    info.state == EXP_RUNNING);
  }
}

void px_admin_dials_publish(struct px_admin_dials *d) {
  if (!d)
    return;
  struct cfg *c = cfg_holder_get(d->o.holder);
  if (!c)
    return;
  publish_locked(d, c);
  cfg_unref(c);
}

static int op_dials_list(void *ud, json_t **out, char *err, size_t errlen) {
  struct px_admin_dials *d = ud;
  struct cfg *c = cfg_holder_get(d->o.holder);
  json_t *a = json_array();
  for (size_t i = 0; i < c->ndials; i++)
    json_array_append_new(a, dial_json(d, c, &c->dials[i]));
  cfg_unref(c);
  *out = a;
  return 0;
}

static int op_dial_get(void *ud, const char *name, json_t **out, char *err, size_t errlen) {
  struct px_admin_dials *d = ud;
  struct cfg *c = cfg_holder_get(d->o.holder);
  size_t i = cfg_dial_find(c, name);
  int rc = 0;
  if (i == SIZE_MAX)
    rc = not_found(c, "dial", name, err, errlen);
  else
    *out = dial_json(d, c, &c->dials[i]);
  cfg_unref(c);
  return rc;
}

enum change { SET, STEP, ROLLBACK };

static int dial_change(struct px_admin_dials *d, enum change what, const char *name,
                       const struct px_admin_change *ch, json_t **out, char *err,
                       size_t errlen) {
  struct cfg *c = cfg_holder_get(d->o.holder);
  size_t i = cfg_dial_find(c, name);
  if (i == SIZE_MAX) {
    int rc = not_found(c, "dial", name, err, errlen);
    cfg_unref(c);
    return rc;
  }
  const char *dc = what == SET ? ch->datacenter : NULL;
  uint32_t prev = 0;
  if (dial_store_get_percent(d->o.store, name, dc, &prev) != 0 || prev == DIAL_STORE_NONE)
    dial_store_get_percent(d->o.store, name, NULL, &prev);
  const char *reason = ch->reason && *ch->reason ? ch->reason : NULL;
  int rc;
  switch (what) {
  case SET:
    rc = dial_store_set_percent(d->o.store, name, dc, ch->ppm, ch->actor, reason, err, errlen);
    break;
  case STEP:
    rc = dial_store_step(d->o.store, name, NULL, ch->actor, reason, NULL, err, errlen);
    break;
  default:
    rc = dial_store_rollback(d->o.store, name, ch->actor, reason, err, errlen);
    break;
  }
  if (rc == 0) {
    json_t *j = dial_json(d, c, &c->dials[i]);
    json_object_set_new(j, "previous_percent", percent_json(prev));
    if (dc)
      json_object_set_new(j, "datacenter", json_string(dc));
    *out = j;
    publish_locked(d, c);
  } else if (rc == CUT_ERR_RANGE && what == STEP) {
    rc = CUT_ERR_STATE; /* "past its last step" is a conflict with the dial's state */
  }
  cfg_unref(c);
  return rc;
}

static int op_dial_set(void *ud, const char *name, const struct px_admin_change *c, json_t **out,
                       char *err, size_t errlen) {
  return dial_change(ud, SET, name, c, out, err, errlen);
}

static int op_dial_step(void *ud, const char *name, const struct px_admin_change *c,
                        json_t **out, char *err, size_t errlen) {
  return dial_change(ud, STEP, name, c, out, err, errlen);
}

static int op_dial_rollback(void *ud, const char *name, const struct px_admin_change *c,
                            json_t **out, char *err, size_t errlen) {
  return dial_change(ud, ROLLBACK, name, c, out, err, errlen);
}

static json_t *exp_json(const struct px_admin_dials *d, const struct cfg_experiment *e) {
  struct dial_store_exp_info info;
  memset(&info, 0, sizeof info);
  dial_store_exp_get(d->o.store, e->name, (int64_t)time(NULL), &info);
  return json_pack("{s:s, s:s, s:o, s:s, s:s, s:o, s:o, s:o, s:o, s:s}", "name", e->name,
                   "state", exp_state_name(info.state), "pool_percent",
                   percent_json(e->pool_ppm), "canary", e->canary ? e->canary : "", "baseline",
                   e->baseline ? e->baseline : "", "start", time_json(e->start), "end",
                   time_json(e->end), "started_at", time_json(info.started_at), "stopped_at",
                   time_json(info.stopped_at), "reason", info.reason);
}

static int op_experiments_list(void *ud, json_t **out, char *err, size_t errlen) {
  struct px_admin_dials *d = ud;
  struct cfg *c = cfg_holder_get(d->o.holder);
  json_t *a = json_array();
  for (size_t i = 0; i < c->nexperiments; i++)
    json_array_append_new(a, exp_json(d, &c->experiments[i]));
  cfg_unref(c);
  *out = a;
  return 0;
}

static int exp_change(struct px_admin_dials *d, int start, const char *name,
                      const struct px_admin_change *ch, json_t **out, char *err, size_t errlen) {
  struct cfg *c = cfg_holder_get(d->o.holder);
  size_t i = cfg_experiment_find(c, name);
  int rc;
  if (i == SIZE_MAX) {
    rc = not_found(c, "experiment", name, err, errlen);
  } else {
    const char *reason = ch->reason && *ch->reason ? ch->reason : NULL;
    if (!start && !reason)
      rc = cut_errf(err, errlen, CUT_ERR_INVALID, "stopping an experiment needs a \"reason\"");
    else if (start)
      rc = dial_store_exp_start(d->o.store, name, ch->actor, reason, err, errlen);
    else
      rc = dial_store_exp_stop(d->o.store, name, ch->actor, reason, err, errlen);
    if (rc == 0) {
      *out = exp_json(d, &c->experiments[i]);
      publish_locked(d, c);
    }
  }
  cfg_unref(c);
  return rc;
}

static int op_experiment_start(void *ud, const char *name, const struct px_admin_change *c,
                               json_t **out, char *err, size_t errlen) {
  return exp_change(ud, 1, name, c, out, err, errlen);
}

static int op_experiment_stop(void *ud, const char *name, const struct px_admin_change *c,
                              json_t **out, char *err, size_t errlen) {
  return exp_change(ud, 0, name, c, out, err, errlen);
}

static int op_status(void *ud, json_t **out, char *err, size_t errlen) {
  struct px_admin_dials *d = ud;
  struct cfg *c = cfg_holder_get(d->o.holder);
  char digest[65];
  for (int i = 0; i < 32; i++)
    snprintf(digest + 2 * i, 3, "%02x", c->digest[i]);
  json_t *dials = json_object(), *exps = json_object();
  for (size_t i = 0; i < c->ndials; i++)
    json_object_set_new(dials, c->dials[i].name, percent_json(effective_ppm(d, c, c->dials[i].name)));
  int64_t now = (int64_t)time(NULL);
  for (size_t i = 0; i < c->nexperiments; i++) {
    struct dial_store_exp_info info;
    if (dial_store_exp_get(d->o.store, c->experiments[i].name, now, &info) == 0)
      json_object_set_new(exps, c->experiments[i].name, json_string(exp_state_name(info.state)));
  }
  json_t *s = json_pack("{s:{s:s, s:s}, s:s?, s:i, s:o, s:o, s:I}", "config", "path",
                        c->path ? c->path : "", "sha256", digest, "datacenter", c->datacenter,
                        "workers", (int)c->workers, "dials", dials, "experiments", exps,
                        "dial_audit_failures",
                        (json_int_t)dial_store_audit_failures(d->o.store));
  cfg_unref(c);
  if (d->o.status) {
    int rc = d->o.status(d->o.user_data, s, err, errlen);
    if (rc) {
      json_decref(s);
      return rc;
    }
  }
  *out = s;
  return 0;
}

static int op_reload(void *ud, json_t **out, char *err, size_t errlen) {
  struct px_admin_dials *d = ud;
  if (!d->o.reload)
    return cut_errf(err, errlen, CUT_ERR_UNSUPPORTED, "reload is not available in this process");
  int rc = d->o.reload(d->o.user_data, out, err, errlen);
  if (rc == 0)
    px_admin_dials_publish(d);
  return rc;
}

static int op_ready(void *ud) {
  struct px_admin_dials *d = ud;
  return d->o.ready ? d->o.ready(d->o.user_data) : 1;
}

void px_admin_dials_ops(struct px_admin_dials *d, struct px_admin_ops *ops) {
  *ops = (struct px_admin_ops){
      .dials_list = op_dials_list,
      .dial_get = op_dial_get,
      .dial_set = op_dial_set,
      .dial_step = op_dial_step,
      .dial_rollback = op_dial_rollback,
      .experiments_list = op_experiments_list,
      .experiment_start = op_experiment_start,
      .experiment_stop = op_experiment_stop,
      .status = op_status,
      .reload = op_reload,
      .ready = op_ready,
      .user_data = d,
  };
}
