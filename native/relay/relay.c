// UDP media relay core for lib/media (engine "native").
//
// The addon owns the relay sockets and one relay thread per instance. The thread waits in epoll
// and moves datagrams in batches (recvmmsg / sendmmsg, like ../shared/lab/rtp-reference/relay.c).
// JavaScript opens sockets, links them in pairs (what arrives on one leaves from the other),
// sets the SDP target of each socket and reads counters from a Float64Array shared with the
// thread (4 numbers per socket slot, see STAT_*), so reading statistics needs no call and no lock.
//
// Locking: one mutex per instance. The relay thread takes it once per epoll wake-up (not per
// packet) while it reads and forwards the ready sockets; JavaScript takes it for each control
// call. Slot ids carry a generation in the epoll data so that an event for a socket closed in
// between is ignored.
//
// Latching rules (symmetric RTP for phones behind NAT), per socket, i.e. per side, stream and
// component: the first accepted packet sets the target to its source; after that, packets from
// other sources are dropped unless a new SDP of that side was applied since, or the latched
// source has been silent for RELATCH_SILENCE_MS (a NAT binding that changed). A side on hold
// (c=0.0.0.0) is sent nothing, but what it sends is still relayed (e.g. music on hold).
#define _GNU_SOURCE
#include "napi-util.h"
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sipio.h"

#define BATCH 64
#define MAX_BATCHES_PER_WAKE 4 /* per socket, so one busy socket cannot starve the others */
#define PKT_MAX 2048
#define EVENTS_MAX 256
#define RELATCH_SILENCE_MS 2000.0
#define RCVBUF_BYTES (1 << 20)
#define WAKE_TOKEN UINT64_MAX
/* After a busy wake-up the thread pauses this long before waiting again, so that the next wake-up
   finds many sockets ready at once: with one packet per socket every 20 ms (a G.711 call), the
   epoll_wait and the wake-up cost per packet shrink with the batch. Adds at most this much delay.
   MINISIPSERVER_RELAY_COALESCE_US overrides it (0 = off), for benchmarks. */
#define COALESCE_NS 500000L

enum { STAT_FORWARDED = 0, STAT_BYTES = 1, STAT_DROPPED = 2, STAT_LAST_MS = 3, STAT_FIELDS = 4 };

typedef struct {
  int fd;                        /* -1 when the slot is free */
  uint32_t gen;
  int peer;                      /* slot whose socket sends what arrives here, -1 none */
  struct sockaddr_in sdp_target; /* last target given by SDP */
  int has_sdp;
  struct sockaddr_in target;     /* where packets towards the side this socket faces go */
  int target_ok;
  int hold;                      /* SDP said 0.0.0.0 or port 0: send nothing to this side */
  int latched;
  int relatch_allowed;
  double last_latched_ms;
  struct in_addr signal_ip;      /* the side's signalling address: may latch besides the SDP address */
  int has_signal_ip;             /* 0: any source may latch */
} slot_t;

/* A source may latch only from the side's SDP address or the address its SIP came from: a
   stranger sending to relay ports cannot take a stream over (RTP bleed). */
static int latch_allowed(const slot_t *sl, const struct sockaddr_in *src) {
  if (!sl->has_signal_ip) return 1;
  if (src->sin_addr.s_addr == sl->signal_ip.s_addr) return 1;
  return sl->has_sdp && src->sin_addr.s_addr == sl->sdp_target.sin_addr.s_addr;
}

typedef struct {
  pthread_mutex_t mu;
  pthread_t thread;
  int running;
  volatile int stop;
  int ep;
  int wake_fd;
  int max_slots;
  slot_t *slots;
  int *free_stack;
  int free_top;
  double *stats;
  napi_ref stats_ref;
  /* used by the relay thread only */
  struct mmsghdr in_msgs[BATCH];
  struct iovec in_iov[BATCH];
  struct sockaddr_in in_src[BATCH];
  struct mmsghdr out_msgs[BATCH];
  struct iovec out_iov[BATCH];
  struct sockaddr_in out_dst[BATCH];
  char bufs[BATCH][PKT_MAX];
} relay_t;

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* The relay thread is the only writer; aligned 8-byte stores are not torn for the JS reader. */
static void stat_add(relay_t *r, int slot, int field, double v) {
  double *p = &r->stats[slot * STAT_FIELDS + field];
  double n = *p + v;
  __atomic_store(p, &n, __ATOMIC_RELAXED);
}

static void stat_set(relay_t *r, int slot, int field, double v) {
  __atomic_store(&r->stats[slot * STAT_FIELDS + field], &v, __ATOMIC_RELAXED);
}

static int same_addr(const struct sockaddr_in *a, const struct sockaddr_in *b) {
  return a->sin_addr.s_addr == b->sin_addr.s_addr && a->sin_port == b->sin_port;
}

/* Reads what is queued on one socket and forwards it from the peer socket. Called with mu held. */
static void relay_slot(relay_t *r, int s, double now) {
  slot_t *in = &r->slots[s];
  for (int b = 0; b < MAX_BATCHES_PER_WAKE; b++) {
    for (int i = 0; i < BATCH; i++) {
      r->in_iov[i].iov_base = r->bufs[i];
      r->in_iov[i].iov_len = PKT_MAX;
      memset(&r->in_msgs[i], 0, sizeof r->in_msgs[i]);
      r->in_msgs[i].msg_hdr.msg_name = &r->in_src[i];
      r->in_msgs[i].msg_hdr.msg_namelen = sizeof r->in_src[i];
      r->in_msgs[i].msg_hdr.msg_iov = &r->in_iov[i];
      r->in_msgs[i].msg_hdr.msg_iovlen = 1;
    }
    int n = recvmmsg(in->fd, r->in_msgs, BATCH, MSG_DONTWAIT, NULL);
    if (n <= 0) return;
    slot_t *out = in->peer >= 0 ? &r->slots[in->peer] : NULL;
    int can_send = out && out->fd >= 0 && out->target_ok && !out->hold;
    int k = 0, accepted = 0;
    double dropped = 0;
    for (int i = 0; i < n; i++) {
      struct msghdr *h = &r->in_msgs[i].msg_hdr;
      const struct sockaddr_in *src = &r->in_src[i];
      if (h->msg_namelen != sizeof *src || src->sin_family != AF_INET || (h->msg_flags & MSG_TRUNC)) {
        dropped++;
        continue;
      }
      if (!(in->latched && same_addr(src, &in->target))) {
        if ((in->latched && !in->relatch_allowed && now - in->last_latched_ms < RELATCH_SILENCE_MS) || !latch_allowed(in, src)) {
          dropped++;
          continue;
        }
        in->target.sin_family = AF_INET;
        in->target.sin_addr = src->sin_addr;
        in->target.sin_port = src->sin_port;
        in->target_ok = 1;
        in->latched = 1;
      }
      in->relatch_allowed = 0;
      in->last_latched_ms = now;
      accepted = 1;
      if (!can_send) {
        dropped++;
        continue;
      }
      r->out_dst[k] = out->target;
      r->out_iov[k].iov_base = r->bufs[i];
      r->out_iov[k].iov_len = r->in_msgs[i].msg_len;
      memset(&r->out_msgs[k], 0, sizeof r->out_msgs[k]);
      r->out_msgs[k].msg_hdr.msg_name = &r->out_dst[k];
      r->out_msgs[k].msg_hdr.msg_namelen = sizeof r->out_dst[k];
      r->out_msgs[k].msg_hdr.msg_iov = &r->out_iov[k];
      r->out_msgs[k].msg_hdr.msg_iovlen = 1;
      k++;
    }
    int sent = 0;
    while (sent < k) {
      int m = sendmmsg(out->fd, r->out_msgs + sent, k - sent, MSG_DONTWAIT);
      if (m <= 0) break;
      sent += m;
    }
    if (k) {
      double bytes = 0;
      for (int i = 0; i < sent; i++) bytes += (double)r->out_iov[i].iov_len;
      stat_add(r, s, STAT_FORWARDED, sent);
      stat_add(r, s, STAT_BYTES, bytes);
      dropped += k - sent;
    }
    if (dropped) stat_add(r, s, STAT_DROPPED, dropped);
    if (accepted) stat_set(r, s, STAT_LAST_MS, now);
    if (n < BATCH) return;
  }
}

static void *relay_thread(void *arg) {
  relay_t *r = arg;
  const char *env = getenv("MINISIPSERVER_RELAY_COALESCE_US");
  long coalesce_ns = env ? atol(env) * 1000L : COALESCE_NS;
  struct epoll_event evs[EVENTS_MAX];
  while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
    int n = epoll_wait(r->ep, evs, EVENTS_MAX, 1000);
    if (n <= 0) continue;
    double now = now_ms();
    pthread_mutex_lock(&r->mu);
    for (int i = 0; i < n; i++) {
      uint64_t d = evs[i].data.u64;
      if (d == WAKE_TOKEN) {
        uint64_t v;
        if (read(r->wake_fd, &v, sizeof v) < 0) { /* nothing to do */ }
        continue;
      }
      int s = (int)(d & 0xffffffffu);
      uint32_t gen = (uint32_t)(d >> 32);
      if (s < 0 || s >= r->max_slots || r->slots[s].fd < 0 || r->slots[s].gen != gen) continue;
      relay_slot(r, s, now);
    }
    pthread_mutex_unlock(&r->mu);
    if (coalesce_ns > 0) {
      struct timespec pause = { 0, coalesce_ns };
      nanosleep(&pause, NULL);
    }
  }
  return NULL;
}

/* Slot s holds socket fd with no link, no target and zero counters; its generation is kept. */
static void fresh_slot_locked(relay_t *r, int s, int fd) {
  slot_t *sl = &r->slots[s];
  uint32_t gen = sl->gen;
  memset(sl, 0, sizeof *sl);
  sl->fd = fd;
  sl->gen = gen;
  sl->peer = -1;
  for (int f = 0; f < STAT_FIELDS; f++) stat_set(r, s, f, 0);
}

static void close_slot_locked(relay_t *r, int s) {
  slot_t *sl = &r->slots[s];
  if (sl->fd < 0) return;
  epoll_ctl(r->ep, EPOLL_CTL_DEL, sl->fd, NULL);
  close(sl->fd);
  sl->fd = -1;
  sl->gen++;
  if (sl->peer >= 0 && r->slots[sl->peer].peer == s) r->slots[sl->peer].peer = -1;
  sl->peer = -1;
  r->free_stack[r->free_top++] = s;
}

static void stop_relay(relay_t *r) {
  if (!r->running) return;
  __atomic_store_n(&r->stop, 1, __ATOMIC_RELEASE);
  uint64_t one = 1;
  if (write(r->wake_fd, &one, sizeof one) < 0) { /* the 1 s epoll timeout ends the thread anyway */ }
  pthread_join(r->thread, NULL);
  r->running = 0;
  for (int s = 0; s < r->max_slots; s++) close_slot_locked(r, s);
  close(r->ep);
  close(r->wake_fd);
}

static void finalize_relay(napi_env env, void *data, void *hint) {
  relay_t *r = data;
  stop_relay(r);
  if (r->stats_ref) napi_delete_reference(env, r->stats_ref);
  pthread_mutex_destroy(&r->mu);
  free(r->slots);
  free(r->free_stack);
  free(r);
}

/* ---- argument helpers ---- */

static relay_t *get_relay(napi_env env, napi_value v) {
  void *p = NULL;
  if (napi_get_value_external(env, v, &p) != napi_ok || !p) return NULL;
  relay_t *r = p;
  return r->running ? r : NULL;
}

static int slot_ok(relay_t *r, int32_t s) {
  return s >= 0 && s < r->max_slots && r->slots[s].fd >= 0;
}

/* create(maxSlots) -> [handle, ArrayBuffer of maxSlots * STAT_FIELDS doubles] */
static napi_value js_create(napi_env env, napi_callback_info info) {
  GET_ARGS(1);
  int32_t max_slots;
  if (argc < 1 || !get_int(env, argv[0], &max_slots) || max_slots < 1 || max_slots > 131072) THROW(env, "create(maxSlots): bad maxSlots");
  relay_t *r = calloc(1, sizeof *r);
  if (!r) THROW(env, "out of memory");
  r->max_slots = max_slots;
  r->slots = calloc((size_t)max_slots, sizeof *r->slots);
  r->free_stack = calloc((size_t)max_slots, sizeof *r->free_stack);
  napi_value ab;
  void *ab_data = NULL;
  if (!r->slots || !r->free_stack ||
      napi_create_arraybuffer(env, (size_t)max_slots * STAT_FIELDS * sizeof(double), &ab_data, &ab) != napi_ok) {
    free(r->slots); free(r->free_stack); free(r);
    THROW(env, "out of memory");
  }
  r->stats = ab_data;
  memset(r->stats, 0, (size_t)max_slots * STAT_FIELDS * sizeof(double));
  /* The thread writes into this buffer: keep it alive for the life of the relay. */
  napi_create_reference(env, ab, 1, &r->stats_ref);
  for (int s = 0; s < max_slots; s++) {
    r->slots[s].fd = -1;
    r->slots[s].peer = -1;
    r->free_stack[r->free_top++] = max_slots - 1 - s; /* slot 0 is handed out first */
  }
  pthread_mutex_init(&r->mu, NULL);
  r->ep = epoll_create1(EPOLL_CLOEXEC);
  r->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  struct epoll_event ev = { .events = EPOLLIN, .data.u64 = WAKE_TOKEN };
  if (r->ep < 0 || r->wake_fd < 0 || epoll_ctl(r->ep, EPOLL_CTL_ADD, r->wake_fd, &ev) != 0 ||
      pthread_create(&r->thread, NULL, relay_thread, r) != 0) {
    if (r->ep >= 0) close(r->ep);
    if (r->wake_fd >= 0) close(r->wake_fd);
    napi_delete_reference(env, r->stats_ref);
    pthread_mutex_destroy(&r->mu);
    free(r->slots); free(r->free_stack); free(r);
    THROW(env, "cannot start the relay thread");
  }
  r->running = 1;
  napi_value handle, out;
  napi_create_external(env, r, finalize_relay, NULL, &handle);
  napi_create_array_with_length(env, 2, &out);
  napi_set_element(env, out, 0, handle);
  napi_set_element(env, out, 1, ab);
  return out;
}

/* openSocket(handle, bindIp, port) -> slot >= 0, or -errno (e.g. -EADDRINUSE) */
static napi_value js_open_socket(napi_env env, napi_callback_info info) {
  GET_ARGS(3);
  relay_t *r = argc == 3 ? get_relay(env, argv[0]) : NULL;
  char ip[64];
  size_t iplen = 0;
  int32_t port;
  if (!r || napi_get_value_string_utf8(env, argv[1], ip, sizeof ip, &iplen) != napi_ok || !get_int(env, argv[2], &port) ||
      port < 1 || port > 65535)
    THROW(env, "openSocket(handle, ip, port): bad arguments");
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
  if (inet_pton(AF_INET, ip, &a.sin_addr) != 1) return make_int(env, -EINVAL);
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return make_int(env, -errno);
  int sz = RCVBUF_BYTES;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
  if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    int e = errno;
    close(fd);
    return make_int(env, -e);
  }
  pthread_mutex_lock(&r->mu);
  if (r->free_top == 0) {
    pthread_mutex_unlock(&r->mu);
    close(fd);
    return make_int(env, -ENOSPC);
  }
  int s = r->free_stack[--r->free_top];
  uint32_t gen = r->slots[s].gen;
  fresh_slot_locked(r, s, fd);
  struct epoll_event ev = { .events = EPOLLIN, .data.u64 = ((uint64_t)gen << 32) | (uint32_t)s };
  if (epoll_ctl(r->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
    int e = errno;
    close_slot_locked(r, s);
    pthread_mutex_unlock(&r->mu);
    return make_int(env, -e);
  }
  pthread_mutex_unlock(&r->mu);
  return make_int(env, s);
}

/* link(handle, s1, s2): what arrives on s1 leaves from s2 and the other way round */
static napi_value js_link(napi_env env, napi_callback_info info) {
  GET_ARGS(3);
  relay_t *r = argc == 3 ? get_relay(env, argv[0]) : NULL;
  int32_t s1, s2;
  if (!r || !get_int(env, argv[1], &s1) || !get_int(env, argv[2], &s2)) THROW(env, "link(handle, s1, s2): bad arguments");
  pthread_mutex_lock(&r->mu);
  int ok = slot_ok(r, s1) && slot_ok(r, s2) && s1 != s2;
  if (ok) {
    r->slots[s1].peer = s2;
    r->slots[s2].peer = s1;
  }
  pthread_mutex_unlock(&r->mu);
  if (!ok) THROW(env, "link: slot not open");
  return NULL;
}

/* setTarget(handle, slot, ip, port[, signalIp]): the SDP target of the side this socket faces;
   "0.0.0.0" or port 0 = hold. signalIp (IPv4 text, "" = none): may latch as well as the SDP address. */
static napi_value js_set_target(napi_env env, napi_callback_info info) {
  GET_ARGS(5);
  relay_t *r = argc >= 4 ? get_relay(env, argv[0]) : NULL;
  int32_t s, port;
  char ip[64];
  char sig[64] = "";
  size_t iplen = 0, siglen = 0;
  if (!r || !get_int(env, argv[1], &s) || napi_get_value_string_utf8(env, argv[2], ip, sizeof ip, &iplen) != napi_ok ||
      !get_int(env, argv[3], &port) || (argc == 5 && napi_get_value_string_utf8(env, argv[4], sig, sizeof sig, &siglen) != napi_ok))
    THROW(env, "setTarget(handle, slot, ip, port[, signalIp]): bad arguments");
  struct in_addr signal_ip;
  int has_signal_ip = siglen > 0 && inet_pton(AF_INET, sig, &signal_ip) == 1;
  struct sockaddr_in t = { .sin_family = AF_INET, .sin_port = htons((uint16_t)(port & 0xffff)) };
  int null_target = port <= 0 || port > 65535 || inet_pton(AF_INET, ip, &t.sin_addr) != 1 || t.sin_addr.s_addr == 0;
  pthread_mutex_lock(&r->mu);
  if (!slot_ok(r, s)) {
    pthread_mutex_unlock(&r->mu);
    THROW(env, "setTarget: slot not open");
  }
  slot_t *sl = &r->slots[s];
  sl->has_signal_ip = has_signal_ip;
  if (has_signal_ip) sl->signal_ip = signal_ip;
  if (null_target) {
    sl->hold = 1;
    sl->target_ok = 0;
    sl->latched = 0;
    sl->has_sdp = 0;
  } else {
    sl->hold = 0;
    if (sl->has_sdp && sl->latched && same_addr(&sl->sdp_target, &t)) {
      /* Same SDP address again (e.g. a session refresh): keep the latched source, which is the
         real one behind NAT, but let the next source take over if it differs. */
      sl->relatch_allowed = 1;
    } else {
      sl->target = t;
      sl->target_ok = 1;
      sl->latched = 0;
      sl->relatch_allowed = 0;
    }
    sl->sdp_target = t;
    sl->has_sdp = 1;
  }
  pthread_mutex_unlock(&r->mu);
  return NULL;
}

/* resetSocket(handle, slot): the socket stays bound for the next call and forgets this one:
   unlinked, no target, counters zeroed. What still arrives is read and dropped by the relay
   thread (no peer); JavaScript reuses the socket only after a quiet time, resetting it again
   then so that the next call's counters start at zero (pair-supply.ts). */
static napi_value js_reset_socket(napi_env env, napi_callback_info info) {
  GET_ARGS(2);
  relay_t *r = argc == 2 ? get_relay(env, argv[0]) : NULL;
  int32_t s;
  if (!r || !get_int(env, argv[1], &s)) THROW(env, "resetSocket(handle, slot): bad arguments");
  pthread_mutex_lock(&r->mu);
  if (!slot_ok(r, s)) {
    pthread_mutex_unlock(&r->mu);
    THROW(env, "resetSocket: slot not open");
  }
  slot_t *sl = &r->slots[s];
  if (sl->peer >= 0 && r->slots[sl->peer].peer == s) r->slots[sl->peer].peer = -1;
  fresh_slot_locked(r, s, sl->fd);
  pthread_mutex_unlock(&r->mu);
  return NULL;
}

static napi_value js_close_socket(napi_env env, napi_callback_info info) {
  GET_ARGS(2);
  relay_t *r = argc == 2 ? get_relay(env, argv[0]) : NULL;
  int32_t s;
  if (!r || !get_int(env, argv[1], &s)) return NULL; /* closing after destroy is harmless */
  pthread_mutex_lock(&r->mu);
  if (s >= 0 && s < r->max_slots) close_slot_locked(r, s);
  pthread_mutex_unlock(&r->mu);
  return NULL;
}

static napi_value js_now(napi_env env, napi_callback_info info) {
  napi_value out;
  napi_create_double(env, now_ms(), &out);
  return out;
}

static napi_value js_destroy(napi_env env, napi_callback_info info) {
  GET_ARGS(1);
  relay_t *r = argc == 1 ? get_relay(env, argv[0]) : NULL;
  if (r) stop_relay(r);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    { "create", NULL, js_create, NULL, NULL, NULL, napi_default, NULL },
    { "openSocket", NULL, js_open_socket, NULL, NULL, NULL, napi_default, NULL },
    { "link", NULL, js_link, NULL, NULL, NULL, napi_default, NULL },
    { "setTarget", NULL, js_set_target, NULL, NULL, NULL, napi_default, NULL },
    { "resetSocket", NULL, js_reset_socket, NULL, NULL, NULL, napi_default, NULL },
    { "closeSocket", NULL, js_close_socket, NULL, NULL, NULL, napi_default, NULL },
    { "now", NULL, js_now, NULL, NULL, NULL, napi_default, NULL },
    { "destroy", NULL, js_destroy, NULL, NULL, NULL, napi_default, NULL },
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  sipio_register(env, exports);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
