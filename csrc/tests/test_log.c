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

int main(void)
{
    TEST(escaping);
    TEST_MAIN_END();
}
