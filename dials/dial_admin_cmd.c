/* dial_admin_cmd: `cutover dial get|set|step|rollback` and `cutover experiment ...` over the admin API. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "common/cut_err.h"
#include "config/config.h"
#include "dials/dial_admin_cmd.h"
#include "proxy/px_admin.h"
#include "proxy/px_admin_client.h"

#define DEFAULT_ADMIN_HOST "127.0.0.1"
#define DEFAULT_ADMIN_PORT 9901
#define DEFAULT_TOKEN_FILE "run/admin.token"

static const char common_opts[] =
    "\nwhere the admin API is (flags win over -c, which wins over the environment):\n"
    "  --admin HOST:PORT     address of the admin listener\n"
    "  --token-file FILE     file holding the bearer token\n"
    "  -c, --config FILE     take both from the proxy's config file (admin.listen,\n"
    "                        admin.token_file)\n"
    "  otherwise $CUTOVER_ADMIN and $CUTOVER_ADMIN_TOKEN_FILE, or the defaults\n"
    "  127.0.0.1:9901 and run/admin.token\n"
    "other options:\n"
    "  --reason TEXT         why (written to the audit log)\n"
    "  --json                print the API's JSON answer as is\n"
    "  --timeout SECONDS     give up after this long (default 10)\n";

static void dial_usage(FILE *out) {
  fprintf(out,
          "usage: cutover dial get [NAME] [options]\n"
          "       cutover dial set NAME PERCENT [--datacenter DC] [--reason TEXT] [options]\n"
          "       cutover dial step NAME [--reason TEXT] [options]\n"
          "       cutover dial rollback NAME [--reason TEXT] [options]\n"
          "\n"
          "get       prints every dial, or one dial, with its live value\n"
          "set       sets a dial to PERCENT (0..100, up to 4 decimals: 12.5 or 12.5%%)\n"
          "step      moves a dial to the next step of its plan\n"
          "rollback  sets a dial (and every data center's value) to 0%% at once\n"
          "Changes are persisted by the proxy before it answers, and apply to the next request.\n"
          "%s",
          common_opts);
}

static void exp_usage(FILE *out) {
  fprintf(out,
          "usage: cutover experiment list [options]\n"
          "       cutover experiment start NAME [--reason TEXT] [options]\n"
          "       cutover experiment stop NAME --reason TEXT [options]\n"
          "%s",
          common_opts);
}

struct opts {
  const char *verb;
  const char *args[2];
  int nargs;
  const char *admin, *token_file, *config, *reason, *datacenter;
  int json;
  int timeout_s;
};

/* Parses options anywhere after the verb. Returns 0, or 2 (usage error, printed). */
static int parse(int argc, char **argv, struct opts *o, const char *cmd, int allow_dc) {
  memset(o, 0, sizeof *o);
  o->verb = argv[0];
  o->timeout_s = 10;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char **dst = NULL;
    if (!strcmp(a, "--admin"))
      dst = &o->admin;
    else if (!strcmp(a, "--token-file"))
      dst = &o->token_file;
    else if (!strcmp(a, "-c") || !strcmp(a, "--config"))
      dst = &o->config;
    else if (!strcmp(a, "--reason"))
      dst = &o->reason;
    else if (allow_dc && (!strcmp(a, "--datacenter") || !strcmp(a, "--dc")))
      dst = &o->datacenter;
    if (dst) {
      if (i + 1 >= argc) {
        fprintf(stderr, "cutover %s %s: %s needs a value\n", cmd, o->verb, a);
        return 2;
      }
      *dst = argv[++i];
      continue;
    }
    if (!strcmp(a, "--json")) {
      o->json = 1;
    } else if (!strcmp(a, "--timeout")) {
      if (i + 1 >= argc || (o->timeout_s = atoi(argv[++i])) <= 0) {
        fprintf(stderr, "cutover %s %s: --timeout needs a positive number of seconds\n", cmd,
                o->verb);
        return 2;
      }
    } else if (a[0] == '-' && a[1] && !(a[1] >= '0' && a[1] <= '9')) {
      fprintf(stderr, "cutover %s %s: unknown option %s\n", cmd, o->verb, a);
      return 2;
    } else if (o->nargs < 2) {
      o->args[o->nargs++] = a;
    } else {
      fprintf(stderr, "cutover %s %s: unexpected argument \"%s\"\n", cmd, o->verb, a);
      return 2;
    }
  }
  return 0;
}

/* Splits "HOST:PORT" / "[V6]:PORT" into host (written into buf) and port. */
static int split_addr(const char *s, char *buf, size_t buflen, uint16_t *port) {
  const char *colon;
  if (*s == '[') {
    const char *close = strchr(s, ']');
    if (!close || close[1] != ':')
      return -1;
    snprintf(buf, buflen, "%.*s", (int)(close - s - 1), s + 1);
    colon = close + 1;
  } else {
    colon = strrchr(s, ':');
    if (!colon || colon == s)
      return -1;
    snprintf(buf, buflen, "%.*s", (int)(colon - s), s);
  }
  char *end;
  errno = 0;
  unsigned long p = strtoul(colon + 1, &end, 10);
  if (errno || *end || p == 0 || p > 65535)
    return -1;
  *port = (uint16_t)p;
  return 0;
}

struct conn {
  char host[256];
  struct px_admin_target t;
  char *token;
  char actor[96];
};

/* Works out the address and token. Returns 0 or 1 (message printed). */
static int connect_info(const struct opts *o, const char *cmd, struct conn *c) {
  const char *admin = o->admin, *token_file = o->token_file;
  char cfg_admin[300] = "", cfg_token[4096] = "";
  if (o->config) {
    struct cfg *cfg;
    char *errs = NULL;
    if (cfg_load(o->config, &cfg, &errs) != 0) {
      fprintf(stderr, "cutover %s %s: cannot read %s:\n%s\n", cmd, o->verb, o->config,
              errs ? errs : "unknown error");
      free(errs);
      return 1;
    }
    const struct cfg_addr *a = &cfg->admin.listen;
    snprintf(cfg_admin, sizeof cfg_admin, "%s%s%s:%u", a->is_ipv6 ? "[" : "", a->host,
             a->is_ipv6 ? "]" : "", (unsigned)a->port);
    snprintf(cfg_token, sizeof cfg_token, "%s",
             cfg->admin.token_file ? cfg->admin.token_file : DEFAULT_TOKEN_FILE);
    cfg_unref(cfg);
    if (!admin)
      admin = cfg_admin;
    if (!token_file)
      token_file = cfg_token;
  }
  if (!admin)
    admin = getenv("CUTOVER_ADMIN");
  if (!token_file)
    token_file = getenv("CUTOVER_ADMIN_TOKEN_FILE");
  c->t.port = DEFAULT_ADMIN_PORT;
  snprintf(c->host, sizeof c->host, "%s", DEFAULT_ADMIN_HOST);
  if (admin && *admin && split_addr(admin, c->host, sizeof c->host, &c->t.port) != 0) {
    fprintf(stderr, "cutover %s %s: bad admin address \"%s\" (want HOST:PORT)\n", cmd, o->verb,
            admin);
    return 1;
  }
  char err[512];
  if (px_admin_token_load(token_file && *token_file ? token_file : DEFAULT_TOKEN_FILE, 0,
                          &c->token, err, sizeof err) != 0) {
    fprintf(stderr, "cutover %s %s: %s\n", cmd, o->verb, err);
    return 1;
  }
  const char *user = getenv("USER");
  snprintf(c->actor, sizeof c->actor, "cli:%s", user && *user ? user : "unknown");
  c->t.host = c->host;
  c->t.token = c->token;
  c->t.actor = c->actor;
  c->t.timeout_ms = o->timeout_s * 1000;
  return 0;
}

static void conn_clear(struct conn *c) {
  free(c->token);
  c->token = NULL;
}

/* Formats a JSON percent value (number) as "12.5%". */
static void pct(json_t *v, char *buf, size_t len) {
  if (json_is_number(v))
    snprintf(buf, len, "%.10g%%", json_number_value(v));
  else
    snprintf(buf, len, "?");
}

static void print_dial(json_t *d) {
  char p[32];
  pct(json_object_get(d, "percent"), p, sizeof p);
  const char *name = json_string_value(json_object_get(d, "name"));
  const char *to = json_string_value(json_object_get(d, "to"));
  printf("%-24s %9s", name ? name : "?", p);
  if (to)
    printf("  -> %s", to);
  json_t *dcs = json_object_get(d, "datacenters");
  if (json_is_object(dcs) && json_object_size(dcs)) {
    const char *k;
    json_t *v;
    printf("  (");
    int first = 1;
    json_object_foreach(dcs, k, v) {
      pct(v, p, sizeof p);
      printf("%s%s: %s", first ? "" : ", ", k, p);
      first = 0;
    }
    printf(")");
  }
  printf("\n");
}

static void print_experiment(json_t *e) {
  const char *name = json_string_value(json_object_get(e, "name"));
  const char *st = json_string_value(json_object_get(e, "state"));
  char p[32];
  pct(json_object_get(e, "pool_percent"), p, sizeof p);
  printf("%-24s %-10s pool %s", name ? name : "?", st ? st : "?", p);
  const char *reason = json_string_value(json_object_get(e, "reason"));
  if (reason && *reason)
    printf("  (%s)", reason);
  printf("\n");
}

/* Sends one request and prints the outcome. Returns the exit status. */
static int run(const struct opts *o, const char *cmd, const char *method, const char *path,
               json_t *body, void (*print)(const struct opts *, json_t *)) {
  struct conn c = {0};
  if (connect_info(o, cmd, &c) != 0) {
    json_decref(body);
    return 1;
  }
  char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
  json_decref(body);
  struct px_admin_reply r;
  char err[512];
  int rc = px_admin_request(&c.t, method, path, text, &r, err, sizeof err);
  free(text);
  conn_clear(&c);
  if (rc) {
    fprintf(stderr, "cutover %s %s: %s\n", cmd, o->verb, err);
    return 1;
  }
  json_t *j = json_loads(r.body, 0, NULL);
  int status = r.status;
  if (status < 200 || status > 299) {
    const char *msg = json_string_value(json_object_get(j, "error"));
    fprintf(stderr, "cutover %s %s: refused (HTTP %d): %s\n", cmd, o->verb, status,
            msg ? msg : r.body);
    json_t *errs = json_object_get(j, "errors");
    size_t i;
    json_t *v;
    json_array_foreach(errs, i, v) fprintf(stderr, "  %s\n", json_string_value(v));
    if (status == 401)
      fprintf(stderr, "  (check --token-file: it must hold the proxy's admin token)\n");
    json_decref(j);
    px_admin_reply_clear(&r);
    return 1;
  }
  if (o->json || !j)
    fputs(r.body, stdout);
  else
    print(o, j);
  json_decref(j);
  px_admin_reply_clear(&r);
  return 0;
}

static void print_dial_list(const struct opts *o, json_t *j) {
  size_t i;
  json_t *d;
  if (json_is_array(j)) {
    json_array_foreach(j, i, d) print_dial(d);
  } else {
    print_dial(j);
  }
}

static void print_dial_change(const struct opts *o, json_t *j) {
  char now[32], was[32];
  pct(json_object_get(j, "percent"), now, sizeof now);
  json_t *prev = json_object_get(j, "previous_percent");
  const char *name = json_string_value(json_object_get(j, "name"));
  const char *dc = json_string_value(json_object_get(j, "datacenter"));
  if (dc) {
    json_t *dcs = json_object_get(j, "datacenters");
    pct(json_object_get(dcs, dc), now, sizeof now);
  }
  printf("dial %s%s%s: %s", name ? name : o->args[0], dc ? " in " : "", dc ? dc : "", now);
  if (prev) {
    pct(prev, was, sizeof was);
    printf(" (was %s)", was);
  }
  printf("\n");
}

static void print_exp_list(const struct opts *o, json_t *j) {
  size_t i;
  json_t *e;
  if (json_is_array(j)) {
    json_array_foreach(j, i, e) print_experiment(e);
  } else {
    print_experiment(j);
  }
}

static void print_exp_change(const struct opts *o, json_t *j) {
  const char *st = json_string_value(json_object_get(j, "state"));
  printf("experiment %s: %s\n", o->args[0], st ? st : "done");
}

static int need_args(const struct opts *o, const char *cmd, int want, const char *what,
                     void (*usage)(FILE *)) {
  if (o->nargs == want) {
    /* Names go into the URL path: keep them to the characters names are made of. */
    const char *n = want ? o->args[0] : "x";
    if (!*n || strspn(n, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") !=
                   strlen(n)) {
      fprintf(stderr, "cutover %s %s: invalid name \"%s\" (letters, digits, '.', '_', '-')\n",
              cmd, o->verb, n);
      return 2;
    }
    return 0;
  }
  fprintf(stderr, "cutover %s %s: %s\n\n", cmd, o->verb,
          o->nargs < want ? what : "too many arguments");
  usage(stderr);
  return 2;
}

static json_t *reason_body(const struct opts *o) {
  return o->reason ? json_pack("{s:s}", "reason", o->reason) : NULL;
}

int dial_admin_cmd(int argc, char **argv) {
  if (argc < 1) {
    dial_usage(stderr);
    return 2;
  }
  const char *v = argv[0];
  if (!strcmp(v, "help") || !strcmp(v, "-h") || !strcmp(v, "--help")) {
    dial_usage(stdout);
    return 0;
  }
  struct opts o;
  int rc = parse(argc, argv, &o, "dial", !strcmp(v, "set"));
  if (rc)
    return rc;
  char path[300];
  if (!strcmp(v, "get")) {
    if (o.nargs == 0)
      return run(&o, "dial", "GET", "/dials", NULL, print_dial_list);
    if ((rc = need_args(&o, "dial", 1, "", dial_usage)))
      return rc;
    snprintf(path, sizeof path, "/dials/%s", o.args[0]);
    return run(&o, "dial", "GET", path, NULL, print_dial_list);
  }
  if (!strcmp(v, "set")) {
    if ((rc = need_args(&o, "dial", 2, "needs NAME and PERCENT", dial_usage)))
      return rc;
    json_t *body = json_pack("{s:s}", "percent", o.args[1]);
    if (o.reason)
      json_object_set_new(body, "reason", json_string(o.reason));
    if (o.datacenter)
      json_object_set_new(body, "datacenter", json_string(o.datacenter));
    snprintf(path, sizeof path, "/dials/%s", o.args[0]);
    return run(&o, "dial", "PUT", path, body, print_dial_change);
  }
  if (!strcmp(v, "step") || !strcmp(v, "rollback")) {
    if ((rc = need_args(&o, "dial", 1, "needs NAME", dial_usage)))
      return rc;
    snprintf(path, sizeof path, "/dials/%s/%s", o.args[0], v);
    return run(&o, "dial", "POST", path, reason_body(&o), print_dial_change);
  }
  fprintf(stderr, "cutover dial: unknown subcommand \"%s\"\n\n", v);
  dial_usage(stderr);
  return 2;
}

int exp_admin_cmd(int argc, char **argv) {
  if (argc < 1) {
    exp_usage(stderr);
    return 2;
  }
  const char *v = argv[0];
  if (!strcmp(v, "help") || !strcmp(v, "-h") || !strcmp(v, "--help")) {
    exp_usage(stdout);
    return 0;
  }
  struct opts o;
  int rc = parse(argc, argv, &o, "experiment", 0);
  if (rc)
    return rc;
  if (!strcmp(v, "list")) {
    if ((rc = need_args(&o, "experiment", 0, "", exp_usage)))
      return rc;
    return run(&o, "experiment", "GET", "/experiments", NULL, print_exp_list);
  }
  if (!strcmp(v, "start") || !strcmp(v, "stop")) {
    if ((rc = need_args(&o, "experiment", 1, "needs NAME", exp_usage)))
      return rc;
    if (!strcmp(v, "stop") && (!o.reason || !*o.reason)) {
      fprintf(stderr, "cutover experiment stop: --reason TEXT is required\n");
      return 2;
    }
    char path[300];
    snprintf(path, sizeof path, "/experiments/%s/%s", o.args[0], v);
    return run(&o, "experiment", "POST", path, reason_body(&o), print_exp_change);
  }
  fprintf(stderr, "cutover experiment: unknown subcommand \"%s\"\n\n", v);
  exp_usage(stderr);
  return 2;
}
