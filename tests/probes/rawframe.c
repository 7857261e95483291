/* rawframe: an attacker's tool for the network tests. It writes hand-made Ethernet frames on an interface
 * through an AF_PACKET socket (what CAP_NET_RAW allows), with any source MAC and address it is given, and
 * then reports the replies it sees on that interface.
 *
 *   rawframe IFACE ACTION... [listen MS]
 *
 * SRCMAC and SRCIP may be "own" (the interface's). Actions, done in order:
 *   udp SRCMAC SRCIP DSTMAC DSTIP PORT   an IPv4 UDP datagram "rawframe" from port 40000
 *   syn SRCMAC SRCIP DSTMAC DSTIP PORT   an IPv4 TCP SYN from port 40001
 *   arp SRCMAC SRCIP TARGETIP            a broadcast ARP request "who has TARGETIP, tell SRCIP at SRCMAC"
 *   arp2 ETHMAC SRCMAC SRCIP TARGETIP    the same from Ethernet source ETHMAC, the ARP's sender SRCMAC
 *   ra  SRCMAC PREFIX                    an IPv6 router advertisement to ff02::1 of PREFIX/64 (autonomous)
 *   listen MS                            print the replies seen for MS milliseconds, one line each:
 *                                        "synack from IP:PORT", "rst from IP:PORT", "arp-reply from IP to IP"
 * It prints "sent ACTION" after each frame it wrote; any failure is a message and exit status 1.
 */
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int sock;
static int ifindex;
static uint8_t own_mac[6];
static struct in_addr own_ip;

static void die(const char *what) {
    perror(what);
    exit(1);
}

static void parse_mac(const char *s, uint8_t mac[6]) {
    unsigned m[6];
    if (strcmp(s, "own") == 0) {
        memcpy(mac, own_mac, 6);
        return;
    }
    if (sscanf(s, "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]) != 6) {
        fprintf(stderr, "bad MAC %s\n", s);
        exit(1);
    }
    for (int i = 0; i < 6; i++)
        mac[i] = (uint8_t)m[i];
}

static struct in_addr parse_ip(const char *s) {
    struct in_addr a;
    if (strcmp(s, "own") == 0)
        return own_ip;
    if (inet_pton(AF_INET, s, &a) != 1) {
        fprintf(stderr, "bad address %s\n", s);
        exit(1);
    }
    return a;
}

static uint32_t sum16(const void *data, size_t len, uint32_t sum) {
    const uint8_t *p = data;
    for (size_t i = 0; i + 1 < len; i += 2)
        sum += (uint32_t)(p[i] << 8 | p[i + 1]);
    if (len & 1)
        sum += (uint32_t)(p[len - 1] << 8);
    return sum;
}

static uint16_t fold(uint32_t sum) {
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return htons((uint16_t)~sum);
}

static void send_frame(const uint8_t *frame, size_t len, const char *what) {
    struct sockaddr_ll to = {.sll_family = AF_PACKET, .sll_ifindex = ifindex, .sll_halen = 6};
    memcpy(to.sll_addr, frame, 6);
    if (sendto(sock, frame, len, 0, (struct sockaddr *)&to, sizeof to) != (ssize_t)len)
        die("sendto");
    printf("sent %s\n", what);
    fflush(stdout);
}

static size_t ether(uint8_t *f, const uint8_t dst[6], const uint8_t src[6], uint16_t type) {
    memcpy(f, dst, 6);
    memcpy(f + 6, src, 6);
    f[12] = (uint8_t)(type >> 8);
    f[13] = (uint8_t)type;
    return 14;
}

/* An IPv4 frame carrying `l4` (TCP or UDP, its checksum field at `csum_at`). */
static void send_ipv4(char **a, uint8_t proto, uint8_t *l4, size_t l4len, size_t csum_at, const char *what) {
    uint8_t f[1514], smac[6], dmac[6];
    parse_mac(a[0], smac);
    struct in_addr src = parse_ip(a[1]);
    parse_mac(a[2], dmac);
    struct in_addr dst = parse_ip(a[3]);
    size_t off = ether(f, dmac, smac, ETHERTYPE_IP);
    uint8_t *ip = f + off;
    memset(ip, 0, 20);
    ip[0] = 0x45;
    ip[2] = (uint8_t)((20 + l4len) >> 8);
    ip[3] = (uint8_t)(20 + l4len);
    ip[6] = 0x40; /* DF */
    ip[8] = 64;
    ip[9] = proto;
    memcpy(ip + 12, &src, 4);
    memcpy(ip + 16, &dst, 4);
    uint16_t c = fold(sum16(ip, 20, 0));
    memcpy(ip + 10, &c, 2);
    uint8_t pseudo[12] = {0};
    memcpy(pseudo, &src, 4);
    memcpy(pseudo + 4, &dst, 4);
    pseudo[9] = proto;
    pseudo[10] = (uint8_t)(l4len >> 8);
    pseudo[11] = (uint8_t)l4len;
    c = fold(sum16(l4, l4len, sum16(pseudo, 12, 0)));
    memcpy(l4 + csum_at, &c, 2);
    memcpy(ip + 20, l4, l4len);
    send_frame(f, off + 20 + l4len, what);
}

static void put16(uint8_t *p, unsigned v) {
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v) {
    put16(p, v >> 16);
    put16(p + 2, v & 0xffff);
}

static void udp(char **a) {
    uint8_t u[16] = {0};
    put16(u, 40000);
    put16(u + 2, (unsigned)atoi(a[4]));
    put16(u + 4, sizeof u);
    memcpy(u + 8, "rawframe", 8);
    send_ipv4(a, 17, u, sizeof u, 6, "udp");
}

static void syn(char **a) {
    uint8_t t[20] = {0};
    put16(t, 40001);
    put16(t + 2, (unsigned)atoi(a[4]));
    put32(t + 4, 0x1000);
    t[12] = 5 << 4;
    t[13] = 0x02; /* SYN */
    put16(t + 14, 64240);
    send_ipv4(a, 6, t, sizeof t, 16, "syn");
}

static void arp_from(const char *eth, char **a, const char *what) {
    uint8_t f[60] = {0}, emac[6], smac[6], bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    parse_mac(eth, emac);
    parse_mac(a[0], smac);
    struct in_addr sip = parse_ip(a[1]), tip = parse_ip(a[2]);
    size_t off = ether(f, bcast, emac, ETHERTYPE_ARP);
    uint8_t *p = f + off;
    put16(p, 1);      /* Ethernet */
    put16(p + 2, ETHERTYPE_IP);
    p[4] = 6;
    p[5] = 4;
    put16(p + 6, 1);  /* request */
    memcpy(p + 8, smac, 6);
    memcpy(p + 14, &sip, 4);
    memcpy(p + 24, &tip, 4);
    send_frame(f, sizeof f, what);
}

static void arp(char **a) { arp_from(a[0], a, "arp"); }

static void arp2(char **a) { arp_from(a[0], a + 1, "arp2"); }

static void ra(char **a) {
    uint8_t f[200] = {0}, smac[6], dmac[6] = {0x33, 0x33, 0, 0, 0, 1};
    struct in6_addr prefix, src = {0}, dst;
    parse_mac(a[0], smac);
    if (inet_pton(AF_INET6, a[1], &prefix) != 1) {
        fprintf(stderr, "bad prefix %s\n", a[1]);
        exit(1);
    }
    src.s6_addr[0] = 0xfe;
    src.s6_addr[1] = 0x80;
    src.s6_addr[8] = smac[0] ^ 2;
    src.s6_addr[9] = smac[1];
    src.s6_addr[10] = smac[2];
    src.s6_addr[11] = 0xff;
    src.s6_addr[12] = 0xfe;
    memcpy(src.s6_addr + 13, smac + 3, 3);
    inet_pton(AF_INET6, "ff02::1", &dst);
    size_t off = ether(f, dmac, smac, ETHERTYPE_IPV6);
    uint8_t *ip = f + off, *icmp = ip + 40;
    size_t len = 16 + 8 + 32; /* header, source link-layer option, prefix option */
    icmp[0] = 134;
    icmp[4] = 64; /* hop limit; router lifetime 0: not a default router, the prefix still configures */
    uint8_t *o = icmp + 16;
    o[0] = 1;
    o[1] = 1;
    memcpy(o + 2, smac, 6);
    o += 8;
    o[0] = 3;
    o[1] = 4;
    o[2] = 64;
    o[3] = 0xc0; /* on-link, autonomous */
    put32(o + 4, 86400);
    put32(o + 8, 14400);
    memcpy(o + 16, prefix.s6_addr, 16);
    ip[0] = 0x60;
    put16(ip + 4, (unsigned)len);
    ip[6] = 58;
    ip[7] = 255;
    memcpy(ip + 8, src.s6_addr, 16);
    memcpy(ip + 24, dst.s6_addr, 16);
    uint8_t pseudo[40] = {0};
    memcpy(pseudo, src.s6_addr, 16);
    memcpy(pseudo + 16, dst.s6_addr, 16);
    put32(pseudo + 32, (uint32_t)len);
    pseudo[39] = 58;
    uint16_t c = fold(sum16(icmp, len, sum16(pseudo, 40, 0)));
    memcpy(icmp + 2, &c, 2);
    send_frame(f, off + 40 + len, "ra");
}

static long now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void listen_for(int ms) {
    long end = now_ms() + ms;
    for (long left; (left = end - now_ms()) > 0;) {
        struct pollfd p = {.fd = sock, .events = POLLIN};
        if (poll(&p, 1, (int)left) <= 0)
            continue;
        uint8_t f[2048];
        struct sockaddr_ll from;
        socklen_t fl = sizeof from;
        ssize_t n = recvfrom(sock, f, sizeof f, 0, (struct sockaddr *)&from, &fl);
        if (n < 14 || from.sll_pkttype == PACKET_OUTGOING)
            continue;
        char s[INET_ADDRSTRLEN], t[INET_ADDRSTRLEN];
        unsigned type = (unsigned)(f[12] << 8 | f[13]);
        if (type == ETHERTYPE_ARP && n >= 42 && f[21] == 2) {
            inet_ntop(AF_INET, f + 28, s, sizeof s);
            inet_ntop(AF_INET, f + 38, t, sizeof t);
            printf("arp-reply from %s to %s\n", s, t);
        } else if (type == ETHERTYPE_IP && n >= 34 && f[23] == 6) {
            size_t ihl = (size_t)(f[14] & 15) * 4;
            if ((size_t)n < 14 + ihl + 20)
                continue;
            uint8_t *tcp = f + 14 + ihl;
            inet_ntop(AF_INET, f + 26, s, sizeof s);
            unsigned sport = (unsigned)(tcp[0] << 8 | tcp[1]);
            if ((tcp[13] & 0x12) == 0x12)
                printf("synack from %s:%u\n", s, sport);
            else if (tcp[13] & 0x04)
                printf("rst from %s:%u\n", s, sport);
        }
        fflush(stdout);
    }
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: rawframe IFACE ACTION...\n");
        return 1;
    }
    sock = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
    if (sock < 0)
        die("socket(AF_PACKET)");
    struct ifreq ifr = {0};
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", argv[1]);
    if (ioctl(sock, SIOCGIFINDEX, &ifr) < 0)
        die("SIOCGIFINDEX");
    ifindex = ifr.ifr_ifindex;
    if (ioctl(sock, SIOCGIFHWADDR, &ifr) < 0)
        die("SIOCGIFHWADDR");
    memcpy(own_mac, ifr.ifr_hwaddr.sa_data, 6);
    int dg = socket(AF_INET, SOCK_DGRAM, 0);
    ifr.ifr_addr.sa_family = AF_INET;
    if (dg >= 0 && ioctl(dg, SIOCGIFADDR, &ifr) == 0)
        own_ip = ((struct sockaddr_in *)&ifr.ifr_addr)->sin_addr;
    struct sockaddr_ll me = {.sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL), .sll_ifindex = ifindex};
    if (bind(sock, (struct sockaddr *)&me, sizeof me) < 0)
        die("bind");
    for (int i = 2; i < argc;) {
        const char *act = argv[i];
        int need = strcmp(act, "udp") == 0 || strcmp(act, "syn") == 0 ? 6
                   : strcmp(act, "arp") == 0                         ? 4
                   : strcmp(act, "arp2") == 0                        ? 5
                   : strcmp(act, "ra") == 0                          ? 3
                   : strcmp(act, "listen") == 0                      ? 2
                                                                     : 0;
        if (need == 0 || i + need > argc) {
            fprintf(stderr, "bad or short action %s\n", act);
            return 1;
        }
        char **a = argv + i + 1;
        if (strcmp(act, "udp") == 0)
            udp(a);
        else if (strcmp(act, "syn") == 0)
            syn(a);
        else if (strcmp(act, "arp") == 0)
            arp(a);
        else if (strcmp(act, "arp2") == 0)
            arp2(a);
        else if (strcmp(act, "ra") == 0)
            ra(a);
        else
            listen_for(atoi(a[0]));
        i += need;
    }
    return 0;
}
