// RTP phones for scripts/bench/ivr-calls.mjs: many UDP sockets on 127.0.0.1 that receive RTP
// streams and time every packet with the kernel's receive timestamp (SO_TIMESTAMPNS), so the
// inter-arrival intervals measured do not depend on when this process gets scheduled; and, for
// the relay reference, send 50 packets/s of 172 bytes (a 20 ms G.711 packet) from any of them.
//
//   gcc -O2 -pthread -o ivr-rtp scripts/bench/ivr-rtp.c && ./ivr-rtp      (driven on stdin)
//
// Commands, one per line on stdin; every answer is one line on stdout:
//   open K         bind K sockets on 127.0.0.1:0        -> "ports P1 P2 ... PK"
//   kick I PORT    send 3 RTP packets (PCMU silence) from socket I to 127.0.0.1:PORT, so that a
//                  symmetric-RTP relay latches onto it  -> "ok"
//   talk I PORT    socket I sends 50 packets/s to 127.0.0.1:PORT until quit (start phases spread
//                  over the 20 ms by socket index)      -> "ok"
//   start          start a measuring window: counters and intervals reset -> "ok"
//   stop           end it                               -> "report key=value ..." (see below)
//   quit           exit
// Report: packets (received in the window on sockets that had received before it: every one
// gives an interval), streams (sockets that received in the window), lost (RTP sequence gaps),
// dup (duplicate or reordered), ivl_p50/p90/p99/p999/max (inter-arrival per socket, ms),
// dev_p99 (p99 of |interval - 20 ms|), over25/over40 (intervals above 25/40 ms), min_stream /
// max_stream (packets of the least and most fed stream), sent (packets sent by talk in the
// window), cpu_ms (this process's CPU in the window: the receiver thread and the sender),
// rx_errors (UDP receive-buffer drops of our sockets, SO_RXQ_OVFL), ts_fallback (packets without
// a kernel timestamp, timed by clock_gettime instead), late_moments / late_biggest (the packets
// that came more than 25 ms after their stream's previous one, grouped into moments: chained
// within 5 ms of each other; how many moments, and the packets of the biggest), voiced (packets
// carrying audio, not one byte repeated as in comfort silence: the prompt is playing).
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAXSOCK 8192
#define BATCH 32
#define PACKET 172

struct stream {
  double last_ms;
  uint32_t ssrc;
  uint16_t seq;
  int have;
  long window_packets;
  uint32_t ovfl; /* SO_RXQ_OVFL counter last seen */
};

static int fds[MAXSOCK];
static struct stream st[MAXSOCK];
static int nsock;
static int ep;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int measuring;
static double *iv;
static size_t niv, capiv;
/* Arrival times (ms) of the packets that came more than 25 ms after the one before. */
static double *late;
static size_t nlate, caplate;
static long w_packets, w_lost, w_dup, w_fallback, w_ovfl, w_voiced;
static volatile long sent_total;

/* Talkers (relay reference). */
static struct sockaddr_in talk_dst[MAXSOCK];
static int talk_on[MAXSOCK];
static double talk_due[MAXSOCK];
static uint16_t talk_seq[MAXSOCK];
static uint32_t talk_ts[MAXSOCK];
static pthread_mutex_t talk_mu = PTHREAD_MUTEX_INITIALIZER;
static int sender_started;

static double mono_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}
static double real_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}
static double cpu_ms(void) {
  struct rusage r;
  getrusage(RUSAGE_SELF, &r);
  return r.ru_utime.tv_sec * 1e3 + r.ru_utime.tv_usec / 1e3 + r.ru_stime.tv_sec * 1e3 + r.ru_stime.tv_usec / 1e3;
}

static void fill_packet(unsigned char *p, uint16_t seq, uint32_t ts, uint32_t ssrc) {
  p[0] = 0x80;
  p[1] = 0; /* PCMU */
  p[2] = seq >> 8; p[3] = seq & 0xff;
  p[4] = ts >> 24; p[5] = ts >> 16; p[6] = ts >> 8; p[7] = ts;
  p[8] = ssrc >> 24; p[9] = ssrc >> 16; p[10] = ssrc >> 8; p[11] = ssrc;
  memset(p + 12, 0xff, PACKET - 12); /* PCMU silence */
}

static void record(int i, const unsigned char *p, int len, double t_ms, int fallback) {
  if (len < 12 || (p[0] & 0xc0) != 0x80) return;
  uint16_t seq = (p[2] << 8) | p[3];
  uint32_t ssrc = ((uint32_t)p[8] << 24) | ((uint32_t)p[9] << 16) | ((uint32_t)p[10] << 8) | p[11];
  struct stream *s = &st[i];
  if (s->have && s->ssrc == ssrc) {
    uint16_t d = (uint16_t)(seq - s->seq);
    if (measuring) {
      if (niv == capiv) {
        capiv = capiv ? capiv * 2 : 1 << 16;
        iv = realloc(iv, capiv * sizeof *iv);
        if (!iv) { perror("realloc"); exit(1); }
      }
      iv[niv++] = t_ms - s->last_ms;
      if (t_ms - s->last_ms > 25) {
        if (nlate == caplate) {
          caplate = caplate ? caplate * 2 : 4096;
          late = realloc(late, caplate * sizeof *late);
          if (!late) { perror("realloc"); exit(1); }
        }
        late[nlate++] = t_ms;
      }
      w_packets++;
      s->window_packets++;
      /* Audio rather than the comfort silence (one byte repeated): the prompt is playing. */
      if (len >= 172 && (p[12] != p[92] || p[52] != p[132])) w_voiced++;
      if (fallback) w_fallback++;
      if (d == 0 || d > 32768) w_dup++;
      else if (d > 1 && d < 3000) w_lost += d - 1;
    }
    if (d != 0 && d <= 32768) s->seq = seq;
  } else {
    s->seq = seq;
    s->ssrc = ssrc;
    s->have = 1;
  }
  s->last_ms = t_ms;
}

static void *receiver(void *arg) {
  (void)arg;
  struct epoll_event ev[512];
  static unsigned char bufs[BATCH][2048];
  static char ctl[BATCH][256];
  struct mmsghdr m[BATCH];
  struct iovec io[BATCH];
  for (;;) {
    int n = epoll_wait(ep, ev, 512, 200);
    if (n < 0 && errno != EINTR) { perror("epoll_wait"); exit(1); }
    for (int k = 0; k < n; k++) {
      int i = (int)ev[k].data.u32;
      for (;;) {
        for (int b = 0; b < BATCH; b++) {
          io[b].iov_base = bufs[b];
          io[b].iov_len = sizeof bufs[b];
          memset(&m[b], 0, sizeof m[b]);
          m[b].msg_hdr.msg_iov = &io[b];
          m[b].msg_hdr.msg_iovlen = 1;
          m[b].msg_hdr.msg_control = ctl[b];
          m[b].msg_hdr.msg_controllen = sizeof ctl[b];
        }
        int r = recvmmsg(fds[i], m, BATCH, MSG_DONTWAIT, NULL);
        if (r <= 0) break;
        pthread_mutex_lock(&mu);
        for (int b = 0; b < r; b++) {
          double t = -1;
          for (struct cmsghdr *c = CMSG_FIRSTHDR(&m[b].msg_hdr); c; c = CMSG_NXTHDR(&m[b].msg_hdr, c)) {
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
              struct timespec ts;
              memcpy(&ts, CMSG_DATA(c), sizeof ts);
              t = ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
            } else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL) {
              uint32_t o;
              memcpy(&o, CMSG_DATA(c), sizeof o);
              if (measuring && o > st[i].ovfl) w_ovfl += o - st[i].ovfl;
              st[i].ovfl = o;
            }
          }
          int fallback = t < 0;
          if (fallback) t = real_ms();
          record(i, bufs[b], (int)m[b].msg_len, t, fallback);
        }
        pthread_mutex_unlock(&mu);
        if (r < BATCH) break;
      }
    }
  }
  return NULL;
}

static void *sender(void *arg) {
  (void)arg;
  static unsigned char pkt[PACKET];
  for (;;) {
    double now = mono_ms(), next = now + 5;
    pthread_mutex_lock(&talk_mu);
    int count = nsock;
    pthread_mutex_unlock(&talk_mu);
    for (int i = 0; i < count; i++) {
      if (!talk_on[i]) continue;
      if (talk_due[i] <= now + 0.05) {
        if (now - talk_due[i] > 100) talk_due[i] = now; /* far behind: carry on from now */
        fill_packet(pkt, talk_seq[i]++, talk_ts[i], 0x10000000u + (uint32_t)i);
        talk_ts[i] += 160;
        if (sendto(fds[i], pkt, PACKET, 0, (struct sockaddr *)&talk_dst[i], sizeof talk_dst[i]) == PACKET)
          __atomic_add_fetch(&sent_total, 1, __ATOMIC_RELAXED);
        talk_due[i] += 20;
      }
      if (talk_due[i] < next) next = talk_due[i];
    }
    double wait = next - mono_ms();
    if (wait > 0) {
      struct timespec ts = { (time_t)(wait / 1e3), (long)((wait - (time_t)(wait / 1e3) * 1e3) * 1e6) };
      nanosleep(&ts, NULL);
    }
  }
  return NULL;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}
static double pct(const double *v, size_t n, double p) {
  if (!n) return 0;
  size_t k = (size_t)(p / 100 * n);
  if (k >= n) k = n - 1;
  return v[k];
}

int main(void) {
  char line[256];
  ep = epoll_create1(0);
  pthread_t rx;
  pthread_create(&rx, NULL, receiver, NULL);
  double cpu0 = 0;
  long sent0 = 0;
  setvbuf(stdout, NULL, _IOLBF, 0);
  while (fgets(line, sizeof line, stdin)) {
    int a, b;
    if (sscanf(line, "open %d", &a) == 1) {
      if (a < 1 || nsock + a > MAXSOCK) { printf("error too many sockets\n"); continue; }
      printf("ports");
      for (int k = 0; k < a; k++) {
        int s = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
        int one = 1, rcv = 1 << 18;
        setsockopt(s, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
        setsockopt(s, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof one);
        setsockopt(s, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = 0 };
        inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
        if (bind(s, (struct sockaddr *)&sa, sizeof sa) < 0) { perror("bind"); exit(1); }
        socklen_t l = sizeof sa;
        getsockname(s, (struct sockaddr *)&sa, &l);
        int i = nsock;
        fds[i] = s;
        struct epoll_event e = { .events = EPOLLIN, .data.u32 = (uint32_t)i };
        epoll_ctl(ep, EPOLL_CTL_ADD, s, &e);
        pthread_mutex_lock(&talk_mu);
        nsock++;
        pthread_mutex_unlock(&talk_mu);
        printf(" %d", ntohs(sa.sin_port));
      }
      printf("\n");
    } else if (sscanf(line, "kick %d %d", &a, &b) == 2) {
      if (a < 0 || a >= nsock) { printf("error bad socket\n"); continue; }
      struct sockaddr_in d = { .sin_family = AF_INET, .sin_port = htons((uint16_t)b) };
      inet_pton(AF_INET, "127.0.0.1", &d.sin_addr);
      unsigned char pkt[PACKET];
      for (int k = 0; k < 3; k++) {
        fill_packet(pkt, (uint16_t)(1000 + k), (uint32_t)(160 * k), 0x20000000u + (uint32_t)a);
        sendto(fds[a], pkt, PACKET, 0, (struct sockaddr *)&d, sizeof d);
      }
      printf("ok\n");
    } else if (sscanf(line, "talk %d %d", &a, &b) == 2) {
      if (a < 0 || a >= nsock) { printf("error bad socket\n"); continue; }
      talk_dst[a] = (struct sockaddr_in){ .sin_family = AF_INET, .sin_port = htons((uint16_t)b) };
      inet_pton(AF_INET, "127.0.0.1", &talk_dst[a].sin_addr);
      talk_due[a] = mono_ms() + (a % 20) + 0.5 * ((a / 20) % 2);
      talk_seq[a] = (uint16_t)(a * 7919);
      __atomic_store_n(&talk_on[a], 1, __ATOMIC_RELEASE);
      if (!sender_started) {
        pthread_t tx;
        pthread_create(&tx, NULL, sender, NULL);
        sender_started = 1;
      }
      printf("ok\n");
    } else if (strncmp(line, "start", 5) == 0) {
      pthread_mutex_lock(&mu);
      measuring = 1;
      niv = 0;
      nlate = 0;
      w_packets = w_lost = w_dup = w_fallback = w_ovfl = w_voiced = 0;
      for (int i = 0; i < nsock; i++) st[i].window_packets = 0;
      cpu0 = cpu_ms();
      sent0 = __atomic_load_n(&sent_total, __ATOMIC_RELAXED);
      pthread_mutex_unlock(&mu);
      printf("ok\n");
    } else if (strncmp(line, "stop", 4) == 0) {
      pthread_mutex_lock(&mu);
      measuring = 0;
      double cpu = cpu_ms() - cpu0;
      long sent = __atomic_load_n(&sent_total, __ATOMIC_RELAXED) - sent0;
      size_t n = niv;
      double *v = malloc((n ? n : 1) * sizeof *v);
      memcpy(v, iv, n * sizeof *v);
      size_t nl = nlate;
      double *lv = malloc((nl ? nl : 1) * sizeof *lv);
      memcpy(lv, late, nl * sizeof *lv);
      long streams = 0, minp = -1, maxp = 0;
      for (int i = 0; i < nsock; i++) {
        long p = st[i].window_packets;
        if (!st[i].have) continue;
        if (p > 0) streams++;
        if (minp < 0 || p < minp) minp = p;
        if (p > maxp) maxp = p;
      }
      long voiced = w_voiced, packets = w_packets, lost = w_lost, dup = w_dup, fb = w_fallback, ovfl = w_ovfl;
      pthread_mutex_unlock(&mu);
      qsort(v, n, sizeof *v, cmp);
      double *dev = malloc((n ? n : 1) * sizeof *dev);
      long over25 = 0, over40 = 0;
      for (size_t k = 0; k < n; k++) {
        dev[k] = v[k] > 20 ? v[k] - 20 : 20 - v[k];
        if (v[k] > 25) over25++;
        if (v[k] > 40) over40++;
      }
      qsort(dev, n, sizeof *dev, cmp);
      /* Late packets grouped in moments: a late packet within 5 ms of the previous one belongs to
         its moment. Few moments with many packets each = stalls of the sender shared by all its
         streams (its event loop or its thread off the CPU); many moments of one = per-stream noise. */
      qsort(lv, nl, sizeof *lv, cmp);
      long moments = 0, biggest = 0, cur = 0;
      for (size_t k = 0; k < nl; k++) {
        if (k == 0 || lv[k] - lv[k - 1] > 5) { moments++; cur = 0; }
        if (++cur > biggest) biggest = cur;
      }
      free(lv);
      printf("report packets=%ld streams=%ld lost=%ld dup=%ld ivl_p50=%.3f ivl_p90=%.3f ivl_p99=%.3f ivl_p999=%.3f ivl_max=%.3f "
             "ivl_min=%.3f dev_p99=%.3f dev_p999=%.3f over25=%ld over40=%ld min_stream=%ld max_stream=%ld sent=%ld cpu_ms=%.0f "
             "rx_errors=%ld ts_fallback=%ld late_moments=%ld late_biggest=%ld voiced=%ld\n",
             packets, streams, lost, dup, pct(v, n, 50), pct(v, n, 90), pct(v, n, 99), pct(v, n, 99.9), n ? v[n - 1] : 0,
             n ? v[0] : 0, pct(dev, n, 99), pct(dev, n, 99.9), over25, over40, minp < 0 ? 0 : minp, maxp, sent, cpu, ovfl, fb, moments, biggest, voiced);
      free(v);
      free(dev);
    } else if (strncmp(line, "quit", 4) == 0) {
      break;
    } else {
      printf("error unknown command\n");
    }
  }
  return 0;
}
