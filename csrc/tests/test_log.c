/* Unit tests for log: one JSON object per line, hostile values escaped. */
#include "check.h"
#include "log.h"

static int tests_run;

static void escaping(void)
{
    int fds[2];
    CHECK_EQ(pipe(fds), 0);
    log_set_fd(fds[1]);
    log_kv(LOG_INFO, "evt", "remote", "1.2.3.4", "hdr", "a\"b\\c\n{\"forged\":1}\x01", NULL);
    log_kv(LOG_DEBUG, "hidden", NULL); /* below the level: not written */
    log_set_fd(-1);
    close(fds[1]);
    char buf[1024];
    ssize_t n = read(fds[0], buf, sizeof buf - 1);
    close(fds[0]);
    CHECK(n > 0);
    buf[n] = '\0';
    CHECK(strstr(buf, "\"event\":\"evt\"") != NULL);
    CHECK(strstr(buf, "\"hdr\":\"a\\\"b\\\\c\\u000a{\\\"forged\\\":1}\\u0001\"") != NULL);
    CHECK(strchr(buf, '\n') == buf + n - 1); /* exactly one line */
    CHECK(strstr(buf, "hidden") == NULL);
}

static char sunk[8][512];
static int sunk_levels[8], nsunk;

static void sink(void *ud, int level, const char *text)
{
    CHECK(ud == (void *)sunk);
    if (nsunk < 8) {
        snprintf(sunk[nsunk], sizeof sunk[nsunk], "%s", text);
        sunk_levels[nsunk++] = level;
    }
}

/* With a sink (how az gets the core's events) nothing reaches the fd,
 * every event at or above the level reaches the sink once, as one line of
 * text that a hostile value cannot split or forge fields in. */
static void sink_replaces_lines(void)
{
    int fds[2];
    CHECK_EQ(pipe(fds), 0);
    log_set_fd(fds[1]);
    log_set_sink(sink, sunk);
    log_set_level(LOG_DEBUG);
    log_kv(LOG_DEBUG, "proxy.listen", "port", "47011", NULL);
    log_kv(LOG_WARN, "relay.refused", "why", "a b\"c\nd=1", "empty", "", NULL);
    log_set_level(LOG_WARN);
    log_kv(LOG_INFO, "filtered", NULL);
    log_set_sink(NULL, NULL);
    log_set_level(LOG_INFO);
    log_kv(LOG_INFO, "back", NULL); /* JSON lines again */
    log_set_fd(-1);
    close(fds[1]);
    char buf[1024];
    ssize_t n = read(fds[0], buf, sizeof buf - 1);
    close(fds[0]);
    CHECK(n > 0);
    buf[n] = '\0';
    CHECK(strstr(buf, "\"event\":\"back\"") != NULL);
    CHECK(strstr(buf, "proxy.listen") == NULL && strstr(buf, "relay.refused") == NULL);
    CHECK_EQ(nsunk, 2);
    CHECK_STR(sunk[0], "proxy.listen port=47011");
    CHECK_EQ(sunk_levels[0], LOG_DEBUG);
    CHECK_STR(sunk[1], "relay.refused why=\"a b\\\"c\\x0ad=1\" empty=\"\"");
    CHECK_EQ(sunk_levels[1], LOG_WARN);
}

int main(void)
{
    TEST(escaping);
    TEST(sink_replaces_lines);
    TEST_MAIN_END();
}
