/* cfg_print: the effective config (defaults filled in, secrets redacted) as YAML. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cut_err.h"
#include "config/cfg_int.h"
#include "config/config.h"
#include "config/units.h"

#define REDACTED "<redacted>"

static int reserved_word(const char *s) {
  static const char *const w[] = {"true", "false", "yes", "no", "on", "off", "null", "~", "y", "n"};
  for (size_t i = 0; i < sizeof w / sizeof w[0]; i++)
    if (!strcasecmp(s, w[i]))
      return 1;
  return 0;
}

static int plain_ok(const char *s) {
  if (!*s || reserved_word(s))
    return 0;
  unsigned char c0 = (unsigned char)s[0];
  if (!isalnum(c0) && c0 != '/' && c0 != '.' && c0 != '_')
    return 0;
  for (const char *p = s; *p; p++) {
    unsigned char c = (unsigned char)*p;
    if (!isalnum(c) && !strchr("_./@+:%-", c))
      return 0;
  }
  /* a ':' that ends a plain scalar reads as a mapping indicator ("k:909:") */
  return s[strlen(s) - 1] != ':';
}

/* Writes s as a YAML scalar that loads back to exactly s (including under
 * ${VAR} substitution, hence `$${`). NULL prints as `~`. */
static void scalar(FILE *f, const char *s) {
  if (!s) {
    fputs("~", f);
    return;
  }
  if (plain_ok(s)) {
    fputs(s, f);
    return;
  }
  fputc('"', f);
  for (const char *p = s; *p; p++) {
    unsigned char c = (unsigned char)*p;
    if (c == '"' || c == '\\')
      fprintf(f, "\\%c", c);
    else if (c == '\n')
      fputs("\\n", f);
    else if (c == '\t')
      fputs("\\t", f);
    else if (c < 0x20 || c == 0x7f)
      fprintf(f, "\\x%02x", c);
    else if (c == '$' && p[1] == '{')
      fputs("$$", f);
    else
      fputc(c, f);
  }
  fputc('"', f);
}

static void duration(FILE *f, uint64_t ms) {
  if (ms == 0)
    fputs("0", f);
  else if (ms % 3600000 == 0)
    fprintf(f, "%lluh", (unsigned long long)(ms / 3600000));
  else if (ms % 60000 == 0)
    fprintf(f, "%llum", (unsigned long long)(ms / 60000));
  else if (ms % 1000 == 0)
    fprintf(f, "%llus", (unsigned long long)(ms / 1000));
  else
    fprintf(f, "%llums", (unsigned long long)ms);
}

static void size(FILE *f, uint64_t b) {
  static const char *const u[] = {"TiB", "GiB", "MiB", "KiB"};
  for (int i = 0; i < 4; i++) {
    uint64_t m = 1ull << (10 * (4 - i));
    if (b && b % m == 0) {
      fprintf(f, "%llu%s", (unsigned long long)(b / m), u[i]);
      return;
    }
  }
  fprintf(f, "%llu", (unsigned long long)b);
}

static void percent(FILE *f, uint32_t ppm) {
  char buf[16];
  cfg_format_percent(ppm, buf, sizeof buf);
  fputs(buf, f);
}

static void number(FILE *f, double v) {
  char buf[40];
  snprintf(buf, sizeof buf, "%.15g", v);
  if (strtod(buf, NULL) != v)
    snprintf(buf, sizeof buf, "%.17g", v);
  fputs(buf, f);
}

static void addr(FILE *f, const struct cfg_addr *a) {
  if (!a->host) {
    fputs("~", f);
    return;
  }
  if (a->is_ipv6)
    fprintf(f, "\"[%s]:%u\"", a->host, a->port);
  else
    fprintf(f, "%s:%u", a->host, a->port);
}

static void strlist(FILE *f, const struct cfg_strlist *l) {
  fputc('[', f);
  for (size_t i = 0; i < l->n; i++) {
    if (i)
      fputs(", ", f);
    scalar(f, l->v[i]);
  }
  fputc(']', f);
}

static void key(FILE *f, const struct cfg_key *k) { scalar(f, k->spec ? k->spec : "random"); }

static const char *bool_s(int b) { return b ? "true" : "false"; }

static void print_tls(FILE *f, const char *ind, const struct cfg_tls *t, int backend) {
  fprintf(f, "%stls:\n", ind);
  if (backend) {
    fprintf(f, "%s  ca: ", ind), scalar(f, t->ca), fputc('\n', f);
    fprintf(f, "%s  verify: %s\n", ind, bool_s(t->verify));
    fprintf(f, "%s  sni: ", ind), scalar(f, t->sni), fputc('\n', f);
  }
  fprintf(f, "%s  cert: ", ind), scalar(f, t->cert), fputc('\n', f);
  fprintf(f, "%s  key: ", ind), scalar(f, t->key), fputc('\n', f);
}

static void print_backend(FILE *f, const struct cfg_backend *b) {
  static const char *const proto[] = {"http1", "h2c", "h2"};
  static const char *const lb[] = {"round_robin", "least_request"};
  fprintf(f, "  %s:\n    hosts: [", b->name);
  for (size_t i = 0; i < b->nhosts; i++) {
    if (i)
      fputs(", ", f);
    fputc('"', f);
    if (b->hosts[i].is_ipv6)
      fprintf(f, "[%s]:%u", b->hosts[i].host, b->hosts[i].port);
    else
      fprintf(f, "%s:%u", b->hosts[i].host, b->hosts[i].port);
    fputc('"', f);
  }
  fprintf(f, "]\n    protocol: %s\n    lb: %s\n", proto[b->protocol], lb[b->lb]);
  fputs("    connect_timeout: ", f), duration(f, b->connect_timeout_ms), fputc('\n', f);
  fputs("    timeout: ", f), duration(f, b->timeout_ms), fputc('\n', f);
  fputs("    total_timeout: ", f), duration(f, b->total_timeout_ms), fputc('\n', f);
  fputs("    idle_timeout: ", f), duration(f, b->idle_timeout_ms), fputc('\n', f);
  fprintf(f, "    max_connections: %u\n    max_streams: %u\n    retries: %u\n", b->max_connections,
          b->max_streams, b->retries);
  if (b->protocol == CFG_PROTO_HTTP1)
    fprintf(f, "    pipeline: %u\n", b->pipeline);
  fputs("    host_header: ", f), scalar(f, b->host_header), fputc('\n', f);
  if (b->has_tls && b->protocol != CFG_PROTO_H2C)
    print_tls(f, "    ", &b->tls, 1);
  const struct cfg_health *h = &b->health;
  fprintf(f, "    health:\n      enabled: %s\n      path: ", bool_s(h->enabled));
  scalar(f, h->path);
  fputs("\n      interval: ", f), duration(f, h->interval_ms);
  fputs("\n      timeout: ", f), duration(f, h->timeout_ms);
  fprintf(f, "\n      healthy_threshold: %u\n      unhealthy_threshold: %u\n",
          h->healthy_threshold, h->unhealthy_threshold);
  const struct cfg_outlier *o = &b->outlier;
  fprintf(f, "    outlier:\n      consecutive_5xx: %u\n      consecutive_connect_failures: %u\n",
          o->consecutive_5xx, o->consecutive_connect_failures);
  fputs("      base_ejection: ", f), duration(f, o->base_ejection_ms);
  fputs("\n      max_ejection: ", f), duration(f, o->max_ejection_ms);
  fputs("\n      max_ejected: ", f), percent(f, o->max_ejected_ppm);
  fprintf(f, "\n    on_unhealthy: %s\n",
          b->on_unhealthy == CFG_UNHEALTHY_FAIL ? "fail" : "fail_open");
}

/* The head that dials, experiments and allocations share: name, key, salt, percentage. */
static void print_bucketing(FILE *f, const char *name, const struct cfg_key *k, const char *salt,
                            const char *pct_key, uint32_t ppm) {
  fprintf(f, "  %s:\n    key: ", name);
  key(f, k);
  fputs("\n    salt: ", f), scalar(f, salt);
  fprintf(f, "\n    %s: ", pct_key), percent(f, ppm);
}

static void print_dial(FILE *f, const struct cfg_dial *d) {
  print_bucketing(f, d->name, &d->key, d->salt, "percent", d->ppm);
  fputs("\n    to: ", f), scalar(f, d->to);
  fputs("\n    per_datacenter: {", f);
  for (size_t i = 0; i < d->nper_dc; i++) {
    fputs(i ? ", " : " ", f);
    scalar(f, d->per_dc[i].datacenter);
    fputs(": ", f);
    percent(f, d->per_dc[i].ppm);
  }
  fputs(d->nper_dc ? " }\n    steps: [" : "}\n    steps: [", f);
  for (size_t i = 0; i < d->nsteps; i++) {
    if (i)
      fputs(", ", f);
    percent(f, d->steps[i]);
  }
  fputs("]\n", f);
}

static void print_time(FILE *f, int64_t t) {
  if (!t) {
    fputs("~", f);
    return;
  }
  int64_t days = t / 86400, rem = t % 86400;
  if (rem < 0) {
    rem += 86400;
    days--;
  }
  /* civil_from_days (proleptic Gregorian) */
  int64_t z = days + 719468;
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  int64_t doe = z - era * 146097;
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t y = yoe + era * 400;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  int64_t mp = (5 * doy + 2) / 153;
  int64_t d = doy - (153 * mp + 2) / 5 + 1;
  int64_t m = mp + (mp < 10 ? 3 : -9);
  y += m <= 2;
  fprintf(f, "\"%04lld-%02lld-%02lldT%02lld:%02lld:%02lldZ\"", (long long)y, (long long)m,
          (long long)d, (long long)(rem / 3600), (long long)(rem / 60 % 60), (long long)(rem % 60));
}

static void print_experiment(FILE *f, const struct cfg_experiment *x) {
  print_bucketing(f, x->name, &x->key, x->salt, "pool", x->pool_ppm);
  fputs("\n    canary: ", f), scalar(f, x->canary);
  fputs("\n    baseline: ", f), scalar(f, x->baseline);
  fputs("\n    start: ", f), print_time(f, x->start);
  fputs("\n    end: ", f), print_time(f, x->end);
  fprintf(f, "\n    state: %s\n    kpi:\n      max_error_rate_delta: ",
          x->autostart ? "running" : "pending");
  number(f, x->kpi.max_error_rate_delta);
  fputs("\n      max_latency_ratio: ", f), number(f, x->kpi.max_latency_ratio);
  fputs("\n      window: ", f), duration(f, x->kpi.window_ms);
  fprintf(f, "\n      min_requests: %u\n      consecutive_windows: %u\n", x->kpi.min_requests,
          x->kpi.consecutive_windows);
}

static void print_allocation(FILE *f, const struct cfg_allocation *a) {
  print_bucketing(f, a->name, &a->key, a->salt, "percent", a->ppm);
  fputs("\n    regions: ", f), strlist(f, &a->regions);
  fputs("\n    platforms: ", f), strlist(f, &a->platforms);
  fputs("\n    app_version: ", f), scalar(f, a->app_version_text);
  fputs("\n    cells:\n", f);
  for (size_t i = 0; i < a->ncells; i++) {
    fputs("      - { name: ", f), scalar(f, a->cells[i].name);
    fprintf(f, ", weight: %u, backend: ", a->cells[i].weight);
    scalar(f, a->cells[i].backend);
    fputs(" }\n", f);
  }
}

static void print_route(FILE *f, const struct cfg_route *r) {
  fputs("  - name: ", f), scalar(f, r->name);
  fputs("\n    match:\n      host: ", f), scalar(f, r->host);
  fputs("\n      path_prefix: ", f), scalar(f, r->path_prefix);
  fputs("\n      path: ", f), scalar(f, r->path);
  fputs("\n      methods: ", f), strlist(f, &r->methods);
  fputs("\n      headers: {", f);
  for (size_t i = 0; i < r->nheaders; i++) {
    fputs(i ? ", " : " ", f);
    scalar(f, r->headers[i].name);
    fputs(": ", f);
    scalar(f, r->headers[i].value);
  }
  fputs(r->nheaders ? " }" : "}", f);
  fputs("\n    backend: ", f), scalar(f, r->backend);
  fputs("\n    dial: ", f), scalar(f, r->dial);
  fputs("\n    experiment: ", f), scalar(f, r->experiment);
  fputs("\n    allocation: ", f), scalar(f, r->allocation);
  fputs("\n    mirror:", f);
  if (!r->nmirrors)
    fputs(" []", f);
  for (size_t i = 0; i < r->nmirrors; i++) {
    const struct cfg_mirror *m = &r->mirrors[i];
    fputs("\n      - backend: ", f), scalar(f, m->backend);
    fputs("\n        percent: ", f), percent(f, m->ppm);
    fputs("\n        key: ", f), key(f, &m->key);
    fputs("\n        methods: ", f), strlist(f, &m->methods);
    fputs("\n        host: ", f), scalar(f, m->host);
  }
  fprintf(f, "\n    record: %s\n    compare: %s\n    compare_ignore: ", bool_s(r->record),
          r->compare == CFG_COMPARE_LIVE ? "live" : "off");
  strlist(f, &r->compare_ignore);
  fprintf(f, "\n    decision_header: %s\n", bool_s(r->decision_header));
}

static void print_recording(FILE *f, const struct cfg_recording *r) {
  static const char *const sink[] = {"none", "kafka", "file"};
  fprintf(f, "recording:\n  sink: %s\n", sink[r->sink]);
  if (r->brokers) {
    fputs("  kafka:\n    brokers: ", f), scalar(f, r->brokers);
    fputs("\n    topic: ", f), scalar(f, r->topic);
    fputs("\n    compression: ", f), scalar(f, r->compression);
    fputs("\n    linger: ", f), duration(f, r->linger_ms);
    fprintf(f, "\n    queue_max_messages: %u\n    properties: {", r->queue_max_messages);
    for (size_t i = 0; i < r->nkafka_props; i++) {
      fputs(i ? ", " : " ", f);
      scalar(f, r->kafka_props[i].key);
      fputs(": ", f);
      scalar(f, r->kafka_props[i].secret ? REDACTED : r->kafka_props[i].value);
    }
    fputs(r->nkafka_props ? " }\n" : "}\n", f);
  }
  fputs("  file:\n    dir: ", f), scalar(f, r->file_dir);
  fputs("\n  spill:\n    dir: ", f), scalar(f, r->spill_dir);
  fputs("\n    max_size: ", f), size(f, r->spill_max_bytes);
  fputs("\n    segment_size: ", f), size(f, r->spill_segment_bytes);
  fputs("\n  lineage_headers: ", f), strlist(f, &r->lineage_headers);
  fputs("\n  redact_headers: ", f), strlist(f, &r->redact_headers);
  fputs("\n  max_body: ", f), size(f, r->max_body_bytes);
  fprintf(f, "\n  hash_device_key: %s\n  max_inflight_shadows: %u\n  shadow_timeout: ",
          bool_s(r->hash_device_key), r->max_inflight_shadows);
  duration(f, r->shadow_timeout_ms);
  fprintf(f, "\n  nice: %u", r->nice);
  fputc('\n', f);
}

int cfg_print(const struct cfg *c, FILE *f) {
  if (!c || !f)
    return CUT_ERR_INVALID;
  fputs("# effective config of ", f);
  fputs(c->path, f);
  fputs(" (sha256 ", f);
  for (int i = 0; i < 32; i++)
    fprintf(f, "%02x", c->digest[i]);
  fprintf(f, ")\nworkers: %u\ndatacenter: ", c->workers);
  scalar(f, c->datacenter);
  fputs("\nrequest_id_header: ", f), scalar(f, c->request_id_header);
  fprintf(f, "\nadmin:\n  enabled: %s\n  listen: ", bool_s(c->admin.enabled));
  addr(f, &c->admin.listen);
  fputs("\n  token_file: ", f), scalar(f, c->admin.token_file);
  fputs("\nlisteners:\n", f);
  for (size_t i = 0; i < c->nlisteners; i++) {
    const struct cfg_listener *l = &c->listeners[i];
    fputs("  - name: ", f), scalar(f, l->name);
    fputs("\n    listen: ", f), addr(f, &l->listen);
    fputc('\n', f);
    if (l->has_tls)
      print_tls(f, "    ", &l->tls, 0);
    else
      fprintf(f, "    h2c_upgrade: %s\n", bool_s(l->h2c_upgrade));
  }
  fputs("backends:\n", f);
  for (size_t i = 0; i < c->nbackends; i++)
    print_backend(f, &c->backends[i]);
  fputs(c->ndials ? "dials:\n" : "dials: {}\n", f);
  for (size_t i = 0; i < c->ndials; i++)
    print_dial(f, &c->dials[i]);
  fputs(c->nexperiments ? "experiments:\n" : "experiments: {}\n", f);
  for (size_t i = 0; i < c->nexperiments; i++)
    print_experiment(f, &c->experiments[i]);
  fputs(c->nallocations ? "allocations:\n" : "allocations: {}\n", f);
  for (size_t i = 0; i < c->nallocations; i++)
    print_allocation(f, &c->allocations[i]);
  fputs("attributes:\n  region: ", f), key(f, &c->attributes.region);
  fputs("\n  platform: ", f), key(f, &c->attributes.platform);
  fputs("\n  app_version: ", f), key(f, &c->attributes.app_version);
  fputs("\nroutes:\n", f);
  for (size_t i = 0; i < c->nroutes; i++)
    print_route(f, &c->routes[i]);
  print_recording(f, &c->recording);
  const struct cfg_limits *l = &c->limits;
  fprintf(f, "limits:\n  max_connections: %u\n  max_concurrent_streams: %u\n  max_header_list: ",
          l->max_connections, l->max_concurrent_streams);
  size(f, l->max_header_list_bytes);
  fprintf(f, "\n  max_headers: %u\n  max_request_body: ", l->max_headers);
  size(f, l->max_request_body_bytes);
  fputs("\n  header_timeout: ", f), duration(f, l->header_timeout_ms);
  fputs("\n  idle_timeout: ", f), duration(f, l->idle_timeout_ms);
  fputs("\n  drain_timeout: ", f), duration(f, l->drain_timeout_ms);
  const struct cfg_h2_floods *hf = &l->h2_floods;
  fprintf(f, "\n  h2_floods:\n    max_resets: %u\n    max_settings: %u\n    max_pings: %u",
          hf->max_resets, hf->max_settings, hf->max_pings);
  fputs("\n    rate_window: ", f), duration(f, hf->rate_window_ms);
  fprintf(f, "\n    max_continuations: %u\n    max_header_block: ", hf->max_continuations);
  size(f, hf->max_header_block_bytes);
  fputs("\n    zero_window_stall: ", f), duration(f, hf->zero_window_stall_ms);
  fputs("\nlogging:\n  level: ", f), scalar(f, c->logging.level);
  fprintf(f, "\n  format: %s\n  access_log: ", c->logging.format == CFG_LOG_JSON ? "json" : "text");
  scalar(f, c->logging.access_log);
  fputs("\nstate:\n  dir: ", f), scalar(f, c->state.dir);
  fputs("\n  dial_state_file: ", f), scalar(f, c->state.dial_state_file);
  fputs("\n  audit_log: ", f), scalar(f, c->state.audit_log);
  fputc('\n', f);
  return ferror(f) ? CUT_ERR_IO : 0;
}
