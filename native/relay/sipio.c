// SIP UDP socket I/O on a thread of its own (sip.udpEngine "native", lib/sip/transport/native-udp.ts).
//
// With Node's dgram every datagram costs the event loop a wake-up, a callback with a fresh
// address object, and a sendmsg() system call made on the JavaScript thread. Here one I/O thread
// per socket receives in batches (recvmmsg) into a queue that JavaScript takes whole with one call,
// and sends what JavaScript queued in batches (sendmmsg). The kernel's side of the traffic, which
// on loopback includes waking the peer, then runs on another core than the SIP logic.
//
// Queues, both guarded by the socket's mutex:
//   rx: records [u32 len][u16 port][u8 family 4|6][u8 textLen][4 bytes IPv4][textLen bytes IPv6
//       text][len bytes datagram], each padded to 4 bytes, integers little-endian. The thread
//       calls JavaScript (thread-safe function) only when it makes the queue non-empty; JavaScript
//       drains it whole, so every datagram is seen and the call rate falls as the load rises. With
//       sipIoCoalesce, it first sleeps that long and reads what came meanwhile, so that at low rates
//       a call carries several datagrams too (sip.udpCoalesceUs).
//   tx: records in the same layout (for IPv6 the text is the destination address), which
//       JavaScript gathers during one turn of its event loop and hands over with one call. It wakes
//       the thread (eventfd) only when it makes the queue non-empty; the thread swaps the queue
//       for an empty one and sends it.
// Both queues are bounded. The receive queue (RX_QUEUE_MAX, some 8,000 SIP messages: enough to
// ride out a pause of the main thread where the kernel's buffer is small, as with the default
// net.core.rmem_max) stops growing when full: the thread stops reading until JavaScript has taken
// it, so an overload waits in, and overflows from, the kernel's socket buffer rather than growing
// a backlog whose answers would all come too late. Sends beyond TX_QUEUE_MAX are dropped and
// counted.
#define _GNU_SOURCE
#include "napi-util.h"
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sipio.h"

#define RX_BATCH 32
#define DGRAM_MAX 65536
#define RX_QUEUE_MAX (4u << 20)
#define TX_QUEUE_MAX (16u << 20)
#define TX_BATCH 64
/* A send of at most this many datagrams, with nothing queued before it, leaves from the JavaScript
   thread at once: at low rates a turn of the event loop sends one or two, and waking the I/O
   thread for them costs more than the send. */
#define INLINE_MAX 4
#define RX_HEADER 12
#define ADDR_TEXT_MAX (INET6_ADDRSTRLEN + IF_NAMESIZE + 1)

typedef struct {
  uint8_t *data;
  size_t len;
  size_t cap;
} bytes_t;

typedef struct {
  pthread_mutex_t mu;
  pthread_t thread;
  int running;
  volatile int stop;
  int fd;
  int ep;
  int wake_fd;
  napi_threadsafe_function tsfn;
  bytes_t rx;
  bytes_t tx;
  int rx_paused; /* the socket is out of the epoll set until JavaScript drains the queue */
  int tx_busy;   /* the I/O thread is sending a batch: later sends queue behind it (order kept) */
  double rx_first_ms; /* CLOCK_MONOTONIC ms when rx last went from empty to holding a record */
  /*
   * How long (ns) the thread waits, after a datagram found JavaScript's queue empty, for others to
   * arrive before it calls JavaScript: at low rates one call then carries several datagrams
   * instead of one each (each call is a wake-up of the main thread). 0: call at once.
   */
  long coalesce_ns;
  double rx_dropped;
  double tx_dropped;
  double tx_errors;
  /* used by the I/O thread only */
  bytes_t tx_work;
  struct mmsghdr in_msgs[RX_BATCH];
  struct iovec in_iov[RX_BATCH];
  struct sockaddr_storage in_src[RX_BATCH];
  struct mmsghdr out_msgs[TX_BATCH];
  struct iovec out_iov[TX_BATCH];
  struct sockaddr_storage out_dst[TX_BATCH];
  uint8_t *in_bufs; /* RX_BATCH * DGRAM_MAX */
} sipio_t;

static size_t pad4(size_t n) { return (n + 3) & ~(size_t)3; }

static void put_u32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_u32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }

/* Room for n more bytes; 0 when the bound would be passed or memory is short. */
static int reserve(bytes_t *b, size_t n, size_t max) {
  if (b->len + n > max) return 0;
  if (b->len + n <= b->cap) return 1;
  size_t cap = b->cap ? b->cap : 65536;
  while (cap < b->len + n) cap *= 2;
  uint8_t *p = realloc(b->data, cap);
  if (!p) return 0;
  b->data = p;
  b->cap = cap;
  return 1;
}

/* The clock of process.hrtime() (libuv's uv_hrtime), in ms. */
static double monotonic_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Appends received datagrams to rx; returns whether rx was empty before. Called with mu held. */
static int queue_received(sipio_t *s, int n) {
  int was_empty = s->rx.len == 0;
  for (int i = 0; i < n; i++) {
    struct msghdr *h = &s->in_msgs[i].msg_hdr;
    size_t len = s->in_msgs[i].msg_len;
    const struct sockaddr_storage *src = &s->in_src[i];
    char text[ADDR_TEXT_MAX];
    size_t text_len = 0;
    uint8_t v4[4] = { 0, 0, 0, 0 };
    uint16_t port;
    uint8_t family;
    if (h->msg_flags & MSG_TRUNC) {
      s->rx_dropped++; /* beyond any SIP message we accept */
      continue;
    }
    if (src->ss_family == AF_INET) {
      const struct sockaddr_in *a = (const struct sockaddr_in *)src;
      memcpy(v4, &a->sin_addr, 4);
      port = ntohs(a->sin_port);
      family = 4;
    } else if (src->ss_family == AF_INET6) {
      const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)src;
      if (!inet_ntop(AF_INET6, &a->sin6_addr, text, INET6_ADDRSTRLEN)) {
        s->rx_dropped++;
        continue;
      }
      text_len = strlen(text);
      if (a->sin6_scope_id) {
        char name[IF_NAMESIZE];
        if (if_indextoname(a->sin6_scope_id, name)) text_len += (size_t)snprintf(text + text_len, sizeof text - text_len, "%%%s", name);
      }
      port = ntohs(a->sin6_port);
      family = 6;
    } else {
      s->rx_dropped++;
      continue;
    }
    size_t rec = pad4(RX_HEADER + text_len + len);
    if (!reserve(&s->rx, rec, RX_QUEUE_MAX)) {
      s->rx_dropped++;
      continue;
    }
    uint8_t *p = s->rx.data + s->rx.len;
    put_u32(p, (uint32_t)len);
    p[4] = (uint8_t)port;
    p[5] = (uint8_t)(port >> 8);
    p[6] = family;
    p[7] = (uint8_t)text_len;
    memcpy(p + 8, v4, 4);
    memcpy(p + RX_HEADER, text, text_len);
    memcpy(p + RX_HEADER + text_len, s->in_iov[i].iov_base, len);
    s->rx.len += rec;
  }
  if (was_empty && s->rx.len > 0) s->rx_first_ms = monotonic_ms();
  return was_empty && s->rx.len > 0;
}

/* Takes the socket out of (or back into) the epoll set. Called with mu held. */
static void set_paused(sipio_t *s, int paused) {
  struct epoll_event ev = { .events = paused ? 0 : EPOLLIN, .data.u32 = 0 };
  epoll_ctl(s->ep, EPOLL_CTL_MOD, s->fd, &ev);
  s->rx_paused = paused;
}

/* How many datagrams of any size the receive queue can surely still take. Called with mu held. */
static size_t rx_room(const sipio_t *s) {
  return (RX_QUEUE_MAX - s->rx.len) / (RX_HEADER + ADDR_TEXT_MAX + DGRAM_MAX);
}

static void call_js_now(sipio_t *s) {
  napi_call_threadsafe_function(s->tsfn, NULL, napi_tsfn_nonblocking);
}

static void receive_ready(sipio_t *s) {
  long coalesce_ns = __atomic_load_n(&s->coalesce_ns, __ATOMIC_RELAXED);
  int owed = 0; /* JavaScript is to be called once this round of reading ends */
  for (int round = 0; round < 16; round++) {
    /* Read no more than the queue can surely take, so that nothing read is dropped here. */
    pthread_mutex_lock(&s->mu);
    size_t room = rx_room(s);
    if (room == 0) set_paused(s, 1);
    pthread_mutex_unlock(&s->mu);
    if (room == 0) break;
    int batch = room < RX_BATCH ? (int)room : RX_BATCH;
    for (int i = 0; i < batch; i++) {
      s->in_iov[i].iov_base = s->in_bufs + (size_t)i * DGRAM_MAX;
      s->in_iov[i].iov_len = DGRAM_MAX;
      memset(&s->in_msgs[i], 0, sizeof s->in_msgs[i]);
      s->in_msgs[i].msg_hdr.msg_name = &s->in_src[i];
      s->in_msgs[i].msg_hdr.msg_namelen = sizeof s->in_src[i];
      s->in_msgs[i].msg_hdr.msg_iov = &s->in_iov[i];
      s->in_msgs[i].msg_hdr.msg_iovlen = 1;
    }
    int n = recvmmsg(s->fd, s->in_msgs, (unsigned)batch, MSG_DONTWAIT, NULL);
    if (n <= 0) break;
    pthread_mutex_lock(&s->mu);
    int notify = queue_received(s, n);
    pthread_mutex_unlock(&s->mu);
    if (notify && coalesce_ns > 0 && n < batch && round == 0) {
      owed = 1;
      struct timespec ts = { 0, coalesce_ns };
      nanosleep(&ts, NULL);
      continue; /* read what came meanwhile, then call */
    }
    if (notify) call_js_now(s);
    if (n < batch) break;
  }
  if (owed) call_js_now(s);
}

/* Parses "a.b.c.d", "v6" or "v6%scope" into dst; 0 if it is not an IP address. */
static int parse_ip(const char *ip, struct sockaddr_storage *dst, socklen_t *len) {
  memset(dst, 0, sizeof *dst);
  struct sockaddr_in *a4 = (struct sockaddr_in *)dst;
  struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)dst;
  if (inet_pton(AF_INET, ip, &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    *len = sizeof *a4;
    return 1;
  }
  char host[INET6_ADDRSTRLEN];
  const char *pct = strchr(ip, '%');
  size_t hl = pct ? (size_t)(pct - ip) : strlen(ip);
  if (hl >= sizeof host) return 0;
  memcpy(host, ip, hl);
  host[hl] = 0;
  if (inet_pton(AF_INET6, host, &a6->sin6_addr) != 1) return 0;
  a6->sin6_family = AF_INET6;
  if (pct) {
    unsigned idx = if_nametoindex(pct + 1);
    if (!idx) idx = (unsigned)strtoul(pct + 1, NULL, 10);
    a6->sin6_scope_id = idx;
  }
  *len = sizeof *a6;
  return 1;
}

/* Waits until the socket can take more (its send buffer was full); 0 after the time bound. */
static int wait_writable(sipio_t *s) {
  struct pollfd p = { s->fd, POLLOUT, 0 };
  return poll(&p, 1, 50) == 1;
}

/* One batch of outgoing datagrams being built: message headers pointing into the records. */
typedef struct {
  struct mmsghdr *msgs;
  struct iovec *iov;
  struct sockaddr_storage *dst;
} out_batch_t;

/* Fills batch entry k from the record at *pp and moves *pp past it; 0 when the record is skipped
   (an IPv6 destination that does not parse: counted). Records were checked by records_ok. */
static int build_msg(sipio_t *s, const uint8_t **pp, out_batch_t *b, int k) {
  const uint8_t *p = *pp;
  uint32_t len = get_u32(p);
  uint16_t port = (uint16_t)(p[4] | p[5] << 8);
  uint8_t family = p[6];
  const uint8_t *v4 = p + 8;
  size_t text_len = p[7];
  const uint8_t *data = p + RX_HEADER + text_len;
  *pp = p + pad4(RX_HEADER + text_len + len);
  struct sockaddr_storage *dst = &b->dst[k];
  socklen_t dlen;
  if (family == 4) {
    struct sockaddr_in *a = (struct sockaddr_in *)dst;
    memset(a, 0, sizeof *a);
    a->sin_family = AF_INET;
    memcpy(&a->sin_addr, v4, 4);
    dlen = sizeof *a;
  } else {
    char text[ADDR_TEXT_MAX];
    memcpy(text, data - text_len, text_len);
    text[text_len] = 0;
    if (!parse_ip(text, dst, &dlen)) {
      s->tx_errors++;
      return 0;
    }
  }
  ((struct sockaddr_in *)dst)->sin_port = htons(port); /* same offset in sockaddr_in6 */
  b->iov[k].iov_base = (void *)data;
  b->iov[k].iov_len = len;
  memset(&b->msgs[k], 0, sizeof b->msgs[k]);
  b->msgs[k].msg_hdr.msg_name = dst;
  b->msgs[k].msg_hdr.msg_namelen = dlen;
  b->msgs[k].msg_hdr.msg_iov = &b->iov[k];
  b->msgs[k].msg_hdr.msg_iovlen = 1;
  return 1;
}

/* Sends msgs[0, k): a datagram the kernel refuses outright is counted and skipped. */
static void send_batch(sipio_t *s, struct mmsghdr *msgs, int k) {
  int done = 0, stalls = 0;
  while (done < k) {
    int m = sendmmsg(s->fd, msgs + done, (unsigned)(k - done), MSG_DONTWAIT);
    if (m > 0) {
      done += m;
      continue;
    }
    if ((errno == EAGAIN || errno == ENOBUFS) && stalls++ < 20 && wait_writable(s)) continue;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == ENOBUFS) {
      s->tx_dropped += k - done;
      return;
    }
    s->tx_errors++;
    done++;
  }
}

static void send_queued(sipio_t *s) {
  pthread_mutex_lock(&s->mu);
  bytes_t swap = s->tx;
  s->tx = s->tx_work;
  s->tx.len = 0;
  s->tx_work = swap;
  s->tx_busy = s->tx_work.len > 0;
  pthread_mutex_unlock(&s->mu);
  if (s->tx_work.len == 0) return;
  out_batch_t b = { s->out_msgs, s->out_iov, s->out_dst };
  const uint8_t *p = s->tx_work.data, *end = s->tx_work.data + s->tx_work.len;
  int k = 0;
  while (p + RX_HEADER <= end) {
    k += build_msg(s, &p, &b, k);
    if (k == TX_BATCH) {
      send_batch(s, s->out_msgs, k);
      k = 0;
    }
  }
  if (k) send_batch(s, s->out_msgs, k);
  s->tx_work.len = 0;
  /* A burst can grow the spare buffer a lot; give the memory back once it is over. */
  if (s->tx_work.cap > (1u << 20)) {
    free(s->tx_work.data);
    s->tx_work.data = NULL;
    s->tx_work.cap = 0;
  }
  pthread_mutex_lock(&s->mu);
  s->tx_busy = 0;
  pthread_mutex_unlock(&s->mu);
}

/* Records in buf[0, len), or INLINE_MAX + 1 when there are more than INLINE_MAX. */
static int count_records(const uint8_t *buf, size_t len) {
  int n = 0;
  for (size_t at = 0; at < len && n <= INLINE_MAX; n++) at += pad4(RX_HEADER + buf[at + 7] + get_u32(buf + at));
  return n;
}

/* Sends a few records at once on the calling (JavaScript) thread, without waking the I/O thread.
   Returns how many bytes of buf were dealt with: what the kernel cannot take now (its buffer is
   full) is left for the I/O thread, which can wait for room. */
static size_t send_inline(sipio_t *s, const uint8_t *buf, size_t len) {
  struct mmsghdr msgs[INLINE_MAX];
  struct iovec iov[INLINE_MAX];
  struct sockaddr_storage dst[INLINE_MAX];
  size_t ends[INLINE_MAX];
  out_batch_t b = { msgs, iov, dst };
  const uint8_t *p = buf;
  int k = 0;
  while (p + RX_HEADER <= buf + len && k < INLINE_MAX) {
    if (build_msg(s, &p, &b, k)) ends[k++] = (size_t)(p - buf);
  }
  int done = 0;
  while (done < k) {
    int m = sendmmsg(s->fd, msgs + done, (unsigned)(k - done), MSG_DONTWAIT);
    if (m > 0) {
      done += m;
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == ENOBUFS) return done == 0 ? 0 : ends[done - 1];
    s->tx_errors++;
    done++;
  }
  return len;
}

static void *io_thread(void *arg) {
  sipio_t *s = arg;
  struct epoll_event evs[2];
  while (!__atomic_load_n(&s->stop, __ATOMIC_ACQUIRE)) {
    int n = epoll_wait(s->ep, evs, 2, 1000);
    for (int i = 0; i < n; i++) {
      if (evs[i].data.u32 == 1) {
        uint64_t v;
        if (read(s->wake_fd, &v, sizeof v) < 0) { /* spurious: the queue is checked below anyway */ }
      } else {
        receive_ready(s);
      }
    }
    pthread_mutex_lock(&s->mu);
    if (s->rx_paused && rx_room(s) > 0) set_paused(s, 0);
    pthread_mutex_unlock(&s->mu);
    send_queued(s);
  }
  send_queued(s); /* what JavaScript sent before close() still leaves */
  return NULL;
}

static void call_js(napi_env env, napi_value js_cb, void *context, void *data) {
  if (env == NULL || js_cb == NULL) return;
  napi_value undefined;
  napi_get_undefined(env, &undefined);
  napi_call_function(env, undefined, js_cb, 0, NULL, NULL);
}

static void stop_io(sipio_t *s) {
  if (!s->running) return;
  __atomic_store_n(&s->stop, 1, __ATOMIC_RELEASE);
  uint64_t one = 1;
  if (write(s->wake_fd, &one, sizeof one) < 0) { /* the 1 s epoll timeout ends the thread anyway */ }
  pthread_join(s->thread, NULL);
  s->running = 0;
  napi_release_threadsafe_function(s->tsfn, napi_tsfn_abort);
  close(s->ep);
  close(s->wake_fd);
  close(s->fd);
}

static void free_io(sipio_t *s) {
  stop_io(s);
  pthread_mutex_destroy(&s->mu);
  free(s->rx.data);
  free(s->tx.data);
  free(s->tx_work.data);
  free(s->in_bufs);
  free(s);
}

static void finalize_io(napi_env env, void *data, void *hint) { free_io(data); }

static sipio_t *get_io(napi_env env, napi_value v) {
  void *p = NULL;
  if (napi_get_value_external(env, v, &p) != napi_ok) return NULL;
  return p;
}

/* The handle of a function whose one argument is the handle; NULL if that is not what came. */
static sipio_t *only_handle(napi_env env, napi_callback_info info) {
  GET_ARGS(1);
  return argc == 1 ? get_io(env, argv[0]) : NULL;
}

/* udpSocket(ip, port, bufferBytes, reusePort) -> bound non-blocking fd, or -errno. With reusePort
   (sip.workers) several processes bind the same port, and the kernel hands each datagram to one
   of them by a hash of its source and destination: one phone always reaches the same process
   (Node 20's dgram has no reusePort option; it adopts the fd with bind({ fd })). */
static napi_value js_udp_socket(napi_env env, napi_callback_info info) {
  GET_ARGS(4);
  char ip[80];
  size_t iplen = 0;
  int32_t port, buf;
  bool reuse = false;
  if (argc != 4 || napi_get_value_string_utf8(env, argv[0], ip, sizeof ip, &iplen) != napi_ok ||
      !get_int(env, argv[1], &port) || !get_int(env, argv[2], &buf) ||
      napi_get_value_bool(env, argv[3], &reuse) != napi_ok || port < 0 || port > 65535)
    THROW(env, "udpSocket(ip, port, bufferBytes, reusePort): bad arguments");
  struct sockaddr_storage ss;
  socklen_t len;
  if (!parse_ip(ip, &ss, &len)) THROW(env, "udpSocket: not an IP address");
  ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port); /* same offset in sockaddr_in6 */
  int fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return make_int(env, -errno);
  int one = 1;
  if (buf > 0) {
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
  }
  if ((reuse && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) ||
      (ss.ss_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) != 0) ||
      bind(fd, (struct sockaddr *)&ss, len) != 0) {
    int e = errno;
    close(fd);
    return make_int(env, -e);
  }
  return make_int(env, fd);
}

/* localPort(fd) -> the bound port, or -errno. */
static napi_value js_local_port(napi_env env, napi_callback_info info) {
  GET_ARGS(1);
  int32_t fd;
  if (argc != 1 || !get_int(env, argv[0], &fd)) THROW(env, "localPort(fd): bad arguments");
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) return make_int(env, -errno);
  return make_int(env, ntohs(((struct sockaddr_in *)&ss)->sin_port));
}

/* sipIoCoalesce(handle, microseconds): sets the wait described at coalesce_ns (0 to 20,000). */
static napi_value js_coalesce(napi_env env, napi_callback_info info) {
  GET_ARGS(2);
  sipio_t *s = NULL;
  int32_t us;
  if (argc == 2) s = get_io(env, argv[0]);
  if (!s || !get_int(env, argv[1], &us) || us < 0 || us > 20000)
    THROW(env, "sipIoCoalesce(handle, microseconds 0..20000): bad arguments");
  __atomic_store_n(&s->coalesce_ns, (long)us * 1000L, __ATOMIC_RELAXED);
  napi_value out;
  napi_get_undefined(env, &out);
  return out;
}

/* sipIoStart(fd, onReadable) -> handle. The handle owns the fd from then on. */
static napi_value js_start(napi_env env, napi_callback_info info) {
  GET_ARGS(2);
  int32_t fd;
  napi_valuetype t;
  if (argc != 2 || !get_int(env, argv[0], &fd) || napi_typeof(env, argv[1], &t) != napi_ok || t != napi_function)
    THROW(env, "sipIoStart(fd, onReadable): bad arguments");
  sipio_t *s = calloc(1, sizeof *s);
  if (!s) THROW(env, "sipIoStart: out of memory");
  s->in_bufs = malloc((size_t)RX_BATCH * DGRAM_MAX);
  s->fd = fd;
  s->ep = epoll_create1(EPOLL_CLOEXEC);
  s->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  pthread_mutex_init(&s->mu, NULL);
  struct epoll_event ev_sock = { .events = EPOLLIN, .data.u32 = 0 };
  struct epoll_event ev_wake = { .events = EPOLLIN, .data.u32 = 1 };
  napi_value name;
  napi_create_string_utf8(env, "minisipserver.sipio", NAPI_AUTO_LENGTH, &name);
  if (!s->in_bufs || s->ep < 0 || s->wake_fd < 0 || epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &ev_sock) != 0 ||
      epoll_ctl(s->ep, EPOLL_CTL_ADD, s->wake_fd, &ev_wake) != 0 ||
      napi_create_threadsafe_function(env, argv[1], NULL, name, 0, 1, NULL, NULL, NULL, call_js, &s->tsfn) != napi_ok) {
    if (s->ep >= 0) close(s->ep);
    if (s->wake_fd >= 0) close(s->wake_fd);
    free(s->in_bufs);
    pthread_mutex_destroy(&s->mu);
    free(s);
    THROW(env, "sipIoStart: cannot set up the I/O thread");
  }
  if (pthread_create(&s->thread, NULL, io_thread, s) != 0) {
    napi_release_threadsafe_function(s->tsfn, napi_tsfn_abort);
    close(s->ep);
    close(s->wake_fd);
    free(s->in_bufs);
    pthread_mutex_destroy(&s->mu);
    free(s);
    THROW(env, "sipIoStart: cannot start the I/O thread");
  }
  s->running = 1;
  napi_value handle;
  napi_create_external(env, s, finalize_io, NULL, &handle);
  return handle;
}

/* sipIoDrain(handle) -> a Buffer holding every queued record, or null when none. */
static napi_value js_drain(napi_env env, napi_callback_info info) {
  sipio_t *s = only_handle(env, info);
  if (!s) THROW(env, "sipIoDrain(handle): bad arguments");
  napi_value out;
  pthread_mutex_lock(&s->mu);
  if (s->rx.len == 0) {
    pthread_mutex_unlock(&s->mu);
    napi_get_null(env, &out);
    return out;
  }
  void *dst;
  napi_status st = napi_create_buffer_copy(env, s->rx.len, s->rx.data, &dst, &out);
  s->rx.len = 0;
  int resume = s->rx_paused;
  pthread_mutex_unlock(&s->mu);
  if (resume) {
    uint64_t one = 1;
    if (write(s->wake_fd, &one, sizeof one) < 0) { /* counter saturated: the thread is awake already */ }
  }
  if (st != napi_ok) THROW(env, "sipIoDrain: out of memory");
  return out;
}

/* Whether buf[0, len) is a sequence of well-formed tx records. */
static int records_ok(const uint8_t *buf, size_t len) {
  size_t at = 0;
  while (at < len) {
    if (at + RX_HEADER > len) return 0;
    uint32_t n = get_u32(buf + at);
    size_t text_len = buf[at + 7];
    if ((buf[at + 6] != 4 && buf[at + 6] != 6) || n > DGRAM_MAX || text_len >= ADDR_TEXT_MAX) return 0;
    size_t rec = pad4(RX_HEADER + text_len + n);
    if (at + RX_HEADER + text_len + n > len) return 0;
    at += rec;
  }
  return 1;
}

/* sipIoSend(handle, records, length) -> true if queued (false: malformed, or the queue is full). */
static napi_value js_send(napi_env env, napi_callback_info info) {
  GET_ARGS(3);
  sipio_t *s = argc == 3 ? get_io(env, argv[0]) : NULL;
  void *data;
  size_t cap;
  int32_t len;
  if (!s || napi_get_buffer_info(env, argv[1], &data, &cap) != napi_ok || !get_int(env, argv[2], &len) || len < 0 ||
      (size_t)len > cap)
    THROW(env, "sipIoSend(handle, records, length): bad arguments");
  napi_value out;
  if (!s->running || !records_ok(data, (size_t)len)) {
    napi_get_boolean(env, false, &out);
    return out;
  }
  size_t at = 0;
  pthread_mutex_lock(&s->mu);
  int idle = s->tx.len == 0 && !s->tx_busy;
  pthread_mutex_unlock(&s->mu);
  /* Only this thread adds to the queue, so with it empty and the I/O thread not sending, nothing
     can leave before these datagrams: sending them here keeps the order. */
  if (idle && len > 0 && count_records(data, (size_t)len) <= INLINE_MAX) at = send_inline(s, data, (size_t)len);
  int ok = 1;
  if (at < (size_t)len) {
    size_t rest = (size_t)len - at;
    pthread_mutex_lock(&s->mu);
    int was_empty = s->tx.len == 0;
    ok = reserve(&s->tx, rest, TX_QUEUE_MAX);
    if (ok) {
      memcpy(s->tx.data + s->tx.len, (uint8_t *)data + at, rest);
      s->tx.len += rest;
    } else {
      s->tx_dropped++;
    }
    pthread_mutex_unlock(&s->mu);
    if (ok && was_empty) {
      uint64_t one = 1;
      if (write(s->wake_fd, &one, sizeof one) < 0) { /* counter saturated: the thread is awake already */ }
    }
  }
  napi_get_boolean(env, ok, &out);
  return out;
}

/* sipIoStats(handle) -> [received datagrams dropped, sends dropped, sends refused by the kernel]. */
static napi_value js_stats(napi_env env, napi_callback_info info) {
  sipio_t *s = only_handle(env, info);
  if (!s) THROW(env, "sipIoStats(handle): bad arguments");
  pthread_mutex_lock(&s->mu);
  double v[3] = { s->rx_dropped, s->tx_dropped, s->tx_errors };
  pthread_mutex_unlock(&s->mu);
  napi_value out, x;
  napi_create_array_with_length(env, 3, &out);
  for (uint32_t i = 0; i < 3; i++) {
    napi_create_double(env, v[i], &x);
    napi_set_element(env, out, i, x);
  }
  return out;
}

/*
 * sipIoQueuedSince(handle) -> when (process.hrtime clock, ms) the oldest datagram now queued was
 * received, or -1 when the queue is empty: how long the server is behind (overload control).
 */
static napi_value js_queued_since(napi_env env, napi_callback_info info) {
  sipio_t *s = only_handle(env, info);
  if (!s) THROW(env, "sipIoQueuedSince(handle): bad arguments");
  pthread_mutex_lock(&s->mu);
  double since = s->rx.len > 0 ? s->rx_first_ms : -1;
  pthread_mutex_unlock(&s->mu);
  napi_value out;
  napi_create_double(env, since, &out);
  return out;
}

/* sipIoClose(handle): sends what is queued, stops the thread, closes the socket. */
static napi_value js_close(napi_env env, napi_callback_info info) {
  sipio_t *s = only_handle(env, info);
  if (!s) THROW(env, "sipIoClose(handle): bad arguments");
  stop_io(s);
  return NULL;
}

void sipio_register(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    { "udpSocket", NULL, js_udp_socket, NULL, NULL, NULL, napi_default, NULL },
    { "localPort", NULL, js_local_port, NULL, NULL, NULL, napi_default, NULL },
    { "sipIoStart", NULL, js_start, NULL, NULL, NULL, napi_default, NULL },
    { "sipIoCoalesce", NULL, js_coalesce, NULL, NULL, NULL, napi_default, NULL },
    { "sipIoDrain", NULL, js_drain, NULL, NULL, NULL, napi_default, NULL },
    { "sipIoSend", NULL, js_send, NULL, NULL, NULL, napi_default, NULL },
    { "sipIoStats", NULL, js_stats, NULL, NULL, NULL, napi_default, NULL },
    { "sipIoQueuedSince", NULL, js_queued_since, NULL, NULL, NULL, napi_default, NULL },
    { "sipIoClose", NULL, js_close, NULL, NULL, NULL, napi_default, NULL },
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
