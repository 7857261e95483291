/* dnsq NAME SECONDS [SERVER]: asks SERVER (default: the first nameserver of /etc/resolv.conf), port 53
 * over UDP, for the A record of NAME, one query at a time, for SECONDS; prints
 * "queries=N answered=N qps=N p50_us=N p99_us=N max_us=N".
 * A query answered is one whose reply has its ID, NOERROR and at least one answer; one not answered within
 * 1 s counts as a query but not an answer. Built static by bench/networks.sh and copied into the busybox
 * root filesystem both runtimes run, so the loop is the container's own, with no process per query. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static int cmp(const void *a, const void *b) {
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

static int nameserver(char *out, size_t len) {
    FILE *f = fopen("/etc/resolv.conf", "r");
    char line[256];
    if (!f) return -1;
    while (fgets(line, sizeof line, f)) {
        char addr[64];
        if (sscanf(line, "nameserver %63s", addr) == 1) {
            snprintf(out, len, "%s", addr);
            fclose(f);
            return 0;
        }
    }
    fclose(f);
    return -1;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: dnsq NAME SECONDS [SERVER]\n");
        return 2;
    }
    char server[64];
    if (argc > 3) snprintf(server, sizeof server, "%s", argv[3]);
    else if (nameserver(server, sizeof server) < 0) { fprintf(stderr, "no nameserver\n"); return 1; }

    /* The query: header, NAME as labels, type A, class IN. */
    unsigned char q[300];
    size_t n = 12;
    memset(q, 0, 12);
    q[2] = 0x01; /* RD */
    q[5] = 1;    /* QDCOUNT */
    for (char *p = argv[1]; *p;) {
        char *dot = strchr(p, '.');
        size_t l = dot ? (size_t)(dot - p) : strlen(p);
        if (l == 0 || l > 63 || n + l + 6 > sizeof q) break;
        q[n++] = (unsigned char)l;
        memcpy(q + n, p, l);
        n += l;
        p += l;
        if (*p == '.') p++;
    }
    q[n++] = 0;
    q[n++] = 0; q[n++] = 1; /* A */
    q[n++] = 0; q[n++] = 1; /* IN */

    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(53)};
    if (s < 0 || inet_pton(AF_INET, server, &sa.sin_addr) != 1 || connect(s, (struct sockaddr *)&sa, sizeof sa) < 0) {
        perror("dnsq: socket");
        return 1;
    }
    struct timeval tv = {.tv_sec = 1};
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);

    size_t cap = 1 << 20;
    long *lat = malloc(cap * sizeof *lat);
    long long end = now_ns() + atoll(argv[2]) * 1000000000LL;
    unsigned long queries = 0, answered = 0;
    unsigned short id = 1;
    long long start = now_ns(), t;
    while ((t = now_ns()) < end) {
        id++;
        q[0] = id >> 8;
        q[1] = id & 0xff;
        queries++;
        if (send(s, q, n, 0) != (ssize_t)n) continue;
        unsigned char r[1500];
        for (;;) {
            ssize_t got = recv(s, r, sizeof r, 0);
            if (got < 0) break; /* timeout (or ICMP error): not answered */
            if (got < 12 || r[0] != q[0] || r[1] != q[1]) continue; /* a late reply to an earlier query */
            if ((r[3] & 0x0f) == 0 && (r[6] << 8 | r[7]) > 0) {
                long us = (long)((now_ns() - t) / 1000);
                if (answered < cap) lat[answered] = us;
                answered++;
            }
            break;
        }
    }
    double secs = (now_ns() - start) / 1e9;
    size_t k = answered < cap ? answered : cap;
    qsort(lat, k, sizeof *lat, cmp);
    printf("queries=%lu answered=%lu qps=%.0f p50_us=%ld p99_us=%ld max_us=%ld\n", queries, answered,
           answered / secs, k ? lat[k / 2] : 0, k ? lat[(k * 99) / 100] : 0, k ? lat[k - 1] : 0);
    return answered ? 0 : 1;
}
