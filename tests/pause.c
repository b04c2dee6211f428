/* The pod sandbox's process for the test node (tests/node.py builds it
 * statically into the pause image containerd starts for every pod). It
 * holds the pod's namespaces open and does nothing else: as PID 1 of the
 * pod it reaps any child handed to it, and it exits on SIGINT or SIGTERM
 * (PID 1 gets no default action for signals, so it must ask for them). */
#include <signal.h>
#include <stddef.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_stop(int sig)
{
    (void)sig;
    _exit(0);
}

static void on_child(int sig)
{
    (void)sig;
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
}

int main(void)
{
    struct sigaction stop = {.sa_handler = on_stop},
                     child = {.sa_handler = on_child, .sa_flags = SA_NOCLDSTOP};
    if (sigaction(SIGINT, &stop, NULL) < 0 || sigaction(SIGTERM, &stop, NULL) < 0 ||
        sigaction(SIGCHLD, &child, NULL) < 0)
        return 1;
    for (;;)
        pause();
}
