/* bench_urls: the urls source's downloader (stages/fetch) against a
 * loopback server, next to the curl command line fetching the same URLs
 * with --parallel at the same concurrency: the loopback limit on this
 * machine for a client built on the same libcurl.
 *
 *   bench_urls [--urls N] [--size BYTES] [--work DIR]
 *
 * The server is a forked child (epoll, keep-alive, one static body per
 * size), so its CPU is not counted.  For concurrency 16, 64 and 256 it
 * prints URLs/s and MB/s (wall) and MB/s per core (bytes / client CPU
 * seconds), for fetch_run and for curl, and the ratios.  Then 1,000
 * transfers held open together (the server answers after 1.5 s) measure
 * the peak RSS each client adds per 1,000 concurrent transfers. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_clock.h"
#include "stages/fetch.h"

/* ---- the server (child process) ---- */

enum { MAX_CONN = 8192 };

struct conn {
    int fd;
    char in[2048];
    size_t in_len;
    char head[128];
    size_t head_len, body_len, sent; /* sent over head + body */
    double due;                      /* hold until (s), 0 = now */
    int writing;
};

static char *body_buf;
static size_t body_cap;

static void serve_write(int ep, struct conn *c)
{
    while (c->sent < c->head_len + c->body_len) {
        ssize_t w;
        if (c->sent < c->head_len)
            w = write(c->fd, c->head + c->sent, c->head_len - c->sent);
        else
            w = write(c->fd, body_buf + (c->sent - c->head_len),
                      c->head_len + c->body_len - c->sent);
        if (w < 0) {
            if (errno == EAGAIN) {
                struct epoll_event ev = { .events = EPOLLOUT, .data.ptr = c };
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                return;
            }
            close(c->fd);
            free(c);
            return;
        }
        c->sent += (size_t)w;
    }
    c->writing = 0;
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* GET /b/SIZE/I or /hold/MS/SIZE/I */
static void serve_request(int ep, struct conn *c)
{
    char path[256] = "";
    sscanf(c->in, "GET %255s", path);
    size_t size = 0;
    long ms = 0;
    if (sscanf(path, "/b/%zu", &size) != 1 && sscanf(path, "/hold/%ld/%zu", &ms, &size) != 2)
        size = 0;
    if (size > body_cap)
        size = body_cap;
    c->head_len = (size_t)snprintf(c->head, sizeof c->head,
                                   "HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\n"
                                   "Content-Length: %zu\r\n\r\n",
                                   size);
    c->body_len = size;
    c->sent = 0;
    c->in_len = 0;
    c->writing = 1;
    c->due = ms ? bench_wall_s() + ms / 1000.0 : 0;
    if (!c->due)
        serve_write(ep, c);
}

static void server(int lfd)
{
    int ep = epoll_create1(0);
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    struct conn **held = calloc(MAX_CONN, sizeof *held);
    size_t n_held = 0;
    struct epoll_event evs[256];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, n_held ? 10 : 1000);
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (!c) {
                int fd;
                while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    struct conn *nc = calloc(1, sizeof *nc);
                    nc->fd = fd;
                    struct epoll_event e2 = { .events = EPOLLIN, .data.ptr = nc };
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e2);
                }
                continue;
            }
            if (c->writing) {
                if (!c->due)
                    serve_write(ep, c);
                continue;
            }
            ssize_t r = read(c->fd, c->in + c->in_len, sizeof c->in - 1 - c->in_len);
            if (r <= 0) {
                if (r < 0 && errno == EAGAIN)
                    continue;
                close(c->fd);
                free(c);
                continue;
            }
            c->in_len += (size_t)r;
            c->in[c->in_len] = '\0';
            if (strstr(c->in, "\r\n\r\n")) {
                serve_request(ep, c);
                if (c->due && n_held < MAX_CONN)
                    held[n_held++] = c;
            }
        }
        double t = bench_wall_s();
        for (size_t i = 0; i < n_held;) {
            if (held[i]->due <= t) {
                struct conn *c = held[i];
                held[i] = held[--n_held];
                c->due = 0;
                serve_write(ep, c);
            } else {
                i++;
            }
        }
    }
}

static pid_t start_server(int *port)
{
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t al = sizeof a;
    if (bind(lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(lfd, 4096) != 0 ||
        getsockname(lfd, (struct sockaddr *)&a, &al) != 0) {
        perror("server socket");
        exit(1);
    }
    *port = ntohs(a.sin_port);
    pid_t pid = fork();
    if (pid == 0) {
        server(lfd);
        _exit(0);
    }
    close(lfd);
    return pid;
}

/* ---- the clients ---- */

static double cpu_of(const struct rusage *u)
{
    return (double)u->ru_utime.tv_sec + u->ru_utime.tv_usec / 1e6 + (double)u->ru_stime.tv_sec +
           u->ru_stime.tv_usec / 1e6;
}

struct result {
    double wall, cpu, mb;
    long rss_kb;
    size_t ok;
};

static long vm_kb(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = 0;
    size_t n = strlen(field);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, field, n) == 0)
            v = strtol(line + n + 1, NULL, 10);
    if (f)
        fclose(f);
    return v;
}

static struct result run_ours(char **urls, size_t n, unsigned conc, const char *work)
{
    struct fetch_cfg cfg;
    struct vc_err err = { 0 };
    if (fetch_cfg_parse(NULL, "bench", NULL, 64u << 20, &cfg, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
    cfg.concurrency = conc;
    cfg.per_host = conc;
    cfg.timeout_ms = 120000;
    struct fetch_result *res = calloc(n, sizeof *res);
    char spool[4096];
    snprintf(spool, sizeof spool, "%s/spool.bin", work);
    int fd = open(spool, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) {
        perror(spool);
        exit(1);
    }
    unlink(spool);
    /* Reset the peak-RSS mark so VmHWM is this run's. */
    FILE *cr = fopen("/proc/self/clear_refs", "w");
    if (cr) {
        fputs("5", cr);
        fclose(cr);
    }
    long rss0 = vm_kb("VmRSS:");
    struct rusage u0, u1;
    getrusage(RUSAGE_SELF, &u0);
    double t0 = bench_wall_s();
    if (fetch_run(&cfg, urls, n, fd, res, &err) < 0) {
        fprintf(stderr, "fetch_run: %s\n", err.msg);
        exit(1);
    }
    struct result r = { .wall = bench_wall_s() - t0 };
    getrusage(RUSAGE_SELF, &u1);
    r.cpu = cpu_of(&u1) - cpu_of(&u0);
    r.rss_kb = vm_kb("VmHWM:") - rss0;
    for (size_t i = 0; i < n; i++)
        if (res[i].reason == VC_REASON_none)
            r.ok++, r.mb += (double)res[i].len / 1e6;
    close(fd);
    free(res);
    fetch_cfg_free(&cfg);
    return r;
}

static struct result run_curl(char **urls, size_t n, unsigned conc, const char *work, size_t size)
{
    char cfgp[4096];
    snprintf(cfgp, sizeof cfgp, "%s/curl.cfg", work);
    FILE *f = fopen(cfgp, "w");
    for (size_t i = 0; i < n; i++)
        fprintf(f, "url = \"%s\"\noutput = \"/dev/null\"\n", urls[i]);
    fclose(f);
    char par[32];
    snprintf(par, sizeof par, "%u", conc);
    double t0 = bench_wall_s();
    pid_t pid = fork();
    if (pid == 0) {
        execlp("curl", "curl", "-s", "--no-progress-meter", "--parallel", "--parallel-immediate",
               "--parallel-max", par, "-K", cfgp, (char *)NULL);
        _exit(127);
    }
    int status;
    struct rusage u;
    wait4(pid, &status, 0, &u);
    struct result r = { .wall = bench_wall_s() - t0, .cpu = cpu_of(&u), .rss_kb = u.ru_maxrss };
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fprintf(stderr, "curl exited with %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    else
        r.ok = n, r.mb = (double)n * (double)size / 1e6;
    return r;
}

/* n distinct URLs of `size`-byte bodies, answered after hold_ms. */
static char **make_urls(int port, long hold_ms, size_t size, size_t n)
{
    char **u = calloc(n, sizeof *u);
    for (size_t i = 0; i < n; i++) {
        u[i] = malloc(128);
        if (hold_ms)
            snprintf(u[i], 128, "http://127.0.0.1:%d/hold/%ld/%zu/%zu", port, hold_ms, size, i);
        else
            snprintf(u[i], 128, "http://127.0.0.1:%d/b/%zu/%zu", port, size, i);
    }
    return u;
}

int main(int argc, char **argv)
{
    size_t n = 4000, size = 100000;
    const char *work = "/tmp";
    if (argc % 2 == 0) {
        fprintf(stderr, "usage: bench_urls [--urls N] [--size BYTES] [--work DIR]\n");
        return 2;
    }
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--urls") == 0)
            n = strtoull(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--size") == 0)
            size = strtoull(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--work") == 0)
            work = argv[i + 1];
        else {
            fprintf(stderr, "bench_urls: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    body_cap = size > 200000 ? size : 200000;
    body_buf = calloc(1, body_cap);
    memcpy(body_buf, "\xff\xd8\xff\xe0", 4);
    int port;
    pid_t srv = start_server(&port);
    usleep(100000);
    printf("%zu URLs of %zu bytes from 127.0.0.1 (forked epoll server)\n", n, size);
    printf("%-6s %-8s %9s %9s %8s %12s\n", "conc", "client", "URLs/s", "MB/s", "CPU s",
           "MB/s/core");
    char **urls = make_urls(port, 0, size, n);
    static const unsigned concs[] = { 16, 64, 256 };
    for (size_t k = 0; k < 3; k++) {
        struct result o = run_ours(urls, n, concs[k], work);
        struct result c = run_curl(urls, n, concs[k], work, size);
        printf("%-6u %-8s %9.0f %9.1f %8.2f %12.1f\n", concs[k], "fetch", o.ok / o.wall,
               o.mb / o.wall, o.cpu, o.mb / o.cpu);
        printf("%-6u %-8s %9.0f %9.1f %8.2f %12.1f\n", concs[k], "curl", c.ok / c.wall,
               c.mb / c.wall, c.cpu, c.mb / c.cpu);
        printf("%-6u ratio fetch/curl: %.2f wall throughput, %.2f per core (%zu/%zu ok)\n",
               concs[k], (o.mb / o.wall) / (c.mb / c.wall), (o.mb / o.cpu) / (c.mb / c.cpu), o.ok,
               n);
    }
    char **held = make_urls(port, 1500, 20000, 1000);
    struct result o = run_ours(held, 1000, 1000, work);
    struct result c = run_curl(held, 1000, 1000, work, 20000);
    printf("1000 concurrent transfers held 1.5 s: fetch adds %.1f MB peak RSS (%zu ok, %.2f s); "
           "curl's whole process peaks at %.1f MB (%.2f s)\n",
           o.rss_kb / 1024.0, o.ok, o.wall, c.rss_kb / 1024.0, c.wall);
    kill(srv, SIGTERM);
    waitpid(srv, NULL, 0);
    return 0;
}
