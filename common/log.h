/* log: a small levelled logger writing text or JSON lines to stderr. */
#ifndef CUT_LOG_H
#define CUT_LOG_H

enum log_level { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3, LOG_OFF = 4 };
enum log_format { LOG_TEXT = 0, LOG_JSON = 1 };

/* Sets the minimum level and the format. Safe to call at any time; the
 * settings are atomics, so worker threads never lock to read them. */
void log_setup(enum log_level level, enum log_format format);

/* Parses "debug|info|warn|error|off"; returns 0 or CUT_ERR_INVALID. */
int log_level_parse(const char *s, enum log_level *out);

/* Returns nonzero when a message at `level` would be written. */
int log_enabled(enum log_level level);

/* Writes one line: time, level, module, message. In JSON mode the message
 * is escaped and the line is {"ts":..,"level":..,"mod":..,"msg":..}.
 * One write(2) per line, so lines from threads never interleave. */
void log_msg(enum log_level level, const char *mod, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_debug(mod, ...) \
  do { if (log_enabled(LOG_DEBUG)) log_msg(LOG_DEBUG, mod, __VA_ARGS__); } while (0)
#define log_info(mod, ...) log_msg(LOG_INFO, mod, __VA_ARGS__)
#define log_warn(mod, ...) log_msg(LOG_WARN, mod, __VA_ARGS__)
#define log_error(mod, ...) log_msg(LOG_ERROR, mod, __VA_ARGS__)

#endif
