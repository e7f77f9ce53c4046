/**
 * UDP sockets several processes can bind to the same port (SO_REUSEPORT), for `sip.workers`:
 * Node 20's dgram cannot set the option, so the native addon opens the socket and dgram adopts
 * its file descriptor.
 */
import { constants } from 'node:os';
import { loadAddon } from './native-addon.js';

interface ReusePortAddon {
  /** native/relay/sipio.c: a bound UDP socket's fd (or -errno); the last argument asks for SO_REUSEPORT. */
  udpSocket(ip: string, port: number, bufferBytes: number, reusePort: boolean): number;
}

/** A bound SO_REUSEPORT UDP socket's file descriptor. Throws with what to do when it cannot. */
export function reusePortUdpFd(ip: string, port: number): number {
  const addon = loadAddon<ReusePortAddon>('relay');
  if (addon === null || typeof addon.udpSocket !== 'function') {
    throw new Error('sip.workers above 1 needs the native addon: build it with `node scripts/build-native.mjs` (needs g++ and make)');
  }
  const fd = addon.udpSocket(ip, port, 0, true);
  if (fd < 0) {
    const code = Object.entries(constants.errno).find(([, v]) => v === -fd)?.[0] ?? `errno ${-fd}`;
    throw Object.assign(new Error(`cannot bind ${ip}:${port} with SO_REUSEPORT (${code})`), { code });
  }
  return fd;
}
