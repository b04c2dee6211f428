/* redirect: an LD_PRELOAD shim for bench/run, never part of the product.
 *
 * The hub hands the same relay address to the proxy and to the agent, so
 * a latency tool placed on that address would delay both. To delay only
 * the proxy's side (the round trip between a user's laptop and the
 * relay), bench/run starts `az connectedk8s proxy` with this library and
 * CK_BENCH_REDIRECT=FROM:TO: a connect() to 127.0.0.1:FROM from that
 * process goes to 127.0.0.1:TO (Toxiproxy, which forwards to FROM). The
 * relay's certificate names 127.0.0.1, so TLS checks pass unchanged. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

typedef int (*connect_fn)(int, const struct sockaddr *, socklen_t);

int connect(int fd, const struct sockaddr *sa, socklen_t len)
{
    static connect_fn real;
    if (!real)
        real = (connect_fn)dlsym(RTLD_NEXT, "connect");
    const char *spec = getenv("CK_BENCH_REDIRECT");
    unsigned from, to;
    if (spec && sa && sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in) &&
        sscanf(spec, "%u:%u", &from, &to) == 2) {
        struct sockaddr_in in;
        memcpy(&in, sa, sizeof in);
        if (in.sin_addr.s_addr == htonl(INADDR_LOOPBACK) && ntohs(in.sin_port) == from) {
            in.sin_port = htons((unsigned short)to);
            return real(fd, (const struct sockaddr *)&in, sizeof in);
        }
    }
    return real(fd, sa, len);
}
