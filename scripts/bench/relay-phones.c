// Phones for the concurrent-calls benchmark (scripts/bench/relay.sh): for each of N calls, phone
// A at 127.0.0.1:(26000+i) and phone B at 127.0.0.1:(28000+i) each send 172-byte datagrams (a
// 20 ms G.711 RTP packet) at PPS to the relay port of their side, read from PORTS_FILE
// ("portA portB" per call), for SECS seconds; a second thread counts what comes back.
//   relay-phones PORTS_FILE N PPS SECS   ->   "sent S recv R"
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAXCALLS 2000
#define BATCH 64
static int fds[2 * MAXCALLS];
static struct sockaddr_in dst[2 * MAXCALLS];
static int nsock;
static volatile long received;
static volatile int stop_rx;

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }

static void *rx(void *arg) {
  int ep = *(int *)arg;
  struct epoll_event ev[256];
  static char bufs[BATCH][2048];
  struct mmsghdr m[BATCH];
  struct iovec io[BATCH];
  while (!stop_rx) {
    int n = epoll_wait(ep, ev, 256, 200);
    for (int i = 0; i < n; i++) {
      for (;;) {
        for (int k = 0; k < BATCH; k++) { io[k].iov_base = bufs[k]; io[k].iov_len = 2048; memset(&m[k], 0, sizeof m[k]); m[k].msg_hdr.msg_iov = &io[k]; m[k].msg_hdr.msg_iovlen = 1; }
        int r = recvmmsg(ev[i].data.fd, m, BATCH, MSG_DONTWAIT, NULL);
        if (r <= 0) break;
        __atomic_add_fetch(&received, r, __ATOMIC_RELAXED);
        if (r < BATCH) break;
      }
    }
  }
  return NULL;
}

int main(int argc, char **argv) {
  if (argc < 5) { fprintf(stderr, "usage: relay-phones PORTS_FILE N PPS SECS\n"); return 2; }
  FILE *f = fopen(argv[1], "r");
  int calls = atoi(argv[2]);
  double pps = atof(argv[3]), secs = atof(argv[4]);
  if (!f || calls < 1 || calls > MAXCALLS) { fprintf(stderr, "bad arguments\n"); return 2; }
  int ep = epoll_create1(0);
  for (int i = 0; i < calls; i++) {
    int pa, pb;
    if (fscanf(f, "%d %d", &pa, &pb) != 2) { fprintf(stderr, "ports file too short\n"); return 2; }
    int local[2] = { 26000 + i, 28000 + i }, remote[2] = { pa, pb };
    for (int side = 0; side < 2; side++) {
      int s = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
      int sz = 1 << 20;
      setsockopt(s, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
      struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(local[side]), .sin_addr.s_addr = htonl(0x7f000001) };
      if (bind(s, (void *)&a, sizeof a) != 0) { perror("bind phone"); return 1; }
      dst[nsock] = a;
      dst[nsock].sin_port = htons(remote[side]);
      fds[nsock++] = s;
      struct epoll_event e = { .events = EPOLLIN, .data.fd = s };
      epoll_ctl(ep, EPOLL_CTL_ADD, s, &e);
    }
  }
  pthread_t t;
  pthread_create(&t, NULL, rx, &ep);
  char buf[172];
  memset(buf, 0, sizeof buf);
  buf[0] = (char)0x80;
  double total = pps * nsock, t0 = now();
  long sent = 0;
  for (;;) {
    double el = now() - t0;
    if (el >= secs) break;
    long due = (long)(el * total);
    while (sent < due) {
      int k = (int)(sent % nsock); // round robin: each phone sends every 1/pps seconds, phases spread
      if (sendto(fds[k], buf, sizeof buf, 0, (void *)&dst[k], sizeof dst[k]) < 0) { /* counted as lost */ }
      sent++;
    }
    usleep(200);
  }
  sleep(1);
  stop_rx = 1;
  pthread_join(t, NULL);
  printf("sent %ld recv %ld\n", sent, received);
  return 0;
}
