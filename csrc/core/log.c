/* log: JSON-lines logger. See log.h. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static int g_level = LOG_INFO;
static int g_fd = 2;
static log_sink_fn g_sink;
static void *g_sink_ud;

void log_set_sink(log_sink_fn fn, void *ud)
{
    g_sink = fn;
    g_sink_ud = ud;
}

void log_set_level(int level)
{
    g_level = level;
}
int log_get_level(void)
{
    return g_level;
}
void log_set_fd(int fd)
{
    g_fd = fd < 0 ? 2 : fd;
}

/* Appends s as a JSON string body; returns the new length (bounded). */
static size_t put_escaped(char *out, size_t o, size_t cap, const char *s)
{
    for (; *s && o + 8 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            o += (size_t)snprintf(out + o, cap - o, "\\u%04x", c);
        } else {
            out[o++] = (char)c;
        }
    }
    return o;
}

/* Appends s as text for a sink: quoted when it holds a space, a quote or
 * is empty, control bytes and backslashes escaped. */
static size_t put_text(char *out, size_t o, size_t cap, const char *s)
{
    int quote = !*s || strpbrk(s, " \"=") != NULL;
    if (quote && o + 2 < cap)
        out[o++] = '"';
    for (; *s && o + 8 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
        } else {
            out[o++] = (char)c;
        }
    }
    if (quote && o + 1 < cap)
        out[o++] = '"';
    return o;
}

static void to_sink(int level, const char *event, va_list ap)
{
    char line[4096];
    size_t o = put_text(line, 0, sizeof line, event);
    for (;;) {
        const char *k = va_arg(ap, const char *);
        if (!k)
            break;
        const char *v = va_arg(ap, const char *);
        if (o + 16 >= sizeof line)
            break;
        line[o++] = ' ';
        o = put_text(line, o, sizeof line, k);
        line[o++] = '=';
        o = put_text(line, o, sizeof line, v ? v : "");
    }
    line[o < sizeof line ? o : sizeof line - 1] = '\0';
    g_sink(g_sink_ud, level, line);
}

void log_kv(int level, const char *event, ...)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    if (level < g_level)
        return;
    if (g_sink) {
        va_list sp;
        va_start(sp, event);
        to_sink(level, event, sp);
        va_end(sp);
        return;
    }
    char line[4096];
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    size_t o = (size_t)snprintf(
        line, sizeof line, "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\",\"level\":\"%s\",\"event\":\"",
        tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
        (long)(tv.tv_usec / 1000), names[level & 3]);
    o = put_escaped(line, o, sizeof line, event);
    line[o++] = '"';
    va_list ap;
    va_start(ap, event);
    for (;;) {
        const char *k = va_arg(ap, const char *);
        if (!k)
            break;
        const char *v = va_arg(ap, const char *);
        if (o + 16 >= sizeof line)
            break;
        line[o++] = ',';
        line[o++] = '"';
        o = put_escaped(line, o, sizeof line, k);
        line[o++] = '"';
        line[o++] = ':';
        line[o++] = '"';
        o = put_escaped(line, o, sizeof line, v ? v : "");
        line[o++] = '"';
    }
    va_end(ap);
    line[o++] = '}';
    line[o++] = '\n';
    ssize_t w = write(g_fd, line, o);
    (void)w;
}
