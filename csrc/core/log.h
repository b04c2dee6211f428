/* log: one JSON object per line on stderr, for the daemons; inside az the
 * binding installs a sink instead, so that the core's events go through
 * az's own logging (and --debug, --only-show-errors apply to them).
 *
 * Call sites pass key/value string pairs ending with NULL; values are
 * escaped here, so a hostile header value cannot forge a log line. Tokens
 * must never be passed in: there is deliberately no way to log a request
 * line or a header block wholesale. */
#ifndef CK_LOG_H
#define CK_LOG_H

enum { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3 };

void log_set_level(int level);
int log_get_level(void);
/* Redirects output (NULL: stderr). Not thread-safe; set at start-up. */
void log_set_fd(int fd);
/* Receives every event at or above the level instead of stderr: `text` is
 * "event key=value ..." on one line, values quoted when they hold a space
 * or a quote, control bytes escaped (\xNN). Called on the thread that
 * logs. NULL restores the JSON lines. Not thread-safe; set while no other
 * thread logs. */
typedef void (*log_sink_fn)(void *ud, int level, const char *text);
void log_set_sink(log_sink_fn fn, void *ud);
/* log_kv(LOG_INFO, "listen", "hc", name, "remote", addr, NULL) */
void log_kv(int level, const char *event, ...);

#endif
