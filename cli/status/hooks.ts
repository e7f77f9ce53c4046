/** React hooks of the status screen: store changes (throttled), the ticking clock, the terminal size. */
import { useEffect, useState } from 'react';
import { useStdout } from 'ink';
import type { LiveStore } from './state.js';

/**
 * The store's version, updated at most once per `throttleMs` (a burst of events is one render;
 * 0: at every change). The first change after a quiet spell renders at once.
 */
export function useStoreVersion(store: LiveStore, throttleMs: number): number {
  const [version, setVersion] = useState(store.version);
  useEffect(() => {
    let timer: NodeJS.Timeout | null = null;
    let last = 0;
    const flush = () => {
      timer = null;
      last = Date.now();
      setVersion(store.version);
    };
    const unsubscribe = store.subscribe(() => {
      if (timer) return;
      const wait = throttleMs - (Date.now() - last);
      if (wait <= 0) flush();
      else timer = setTimeout(flush, wait);
    });
    setVersion(store.version); // changes between the first render and this effect
    return () => {
      unsubscribe();
      if (timer) clearTimeout(timer);
    };
  }, [store, throttleMs]);
  return version;
}

/** `clock()`, read again every `tickMs` (0: never). */
export function useNow(clock: () => number, tickMs: number): number {
  const [now, setNow] = useState(clock);
  useEffect(() => {
    if (tickMs <= 0) return;
    const t = setInterval(() => setNow(clock()), tickMs);
    return () => clearInterval(t);
  }, [clock, tickMs]);
  return now;
}

/** Columns and rows of the terminal, following resizes; fixed when both are given. */
export function useTerminalSize(fixedWidth?: number, fixedHeight?: number): { width: number; height: number } {
  const { stdout } = useStdout();
  const read = () => ({ width: fixedWidth ?? (stdout.columns || 80), height: fixedHeight ?? (stdout.rows || 24) });
  const [size, setSize] = useState(read);
  useEffect(() => {
    if (fixedWidth !== undefined && fixedHeight !== undefined) {
      setSize({ width: fixedWidth, height: fixedHeight });
      return;
    }
    const onResize = () => setSize(read());
    stdout.on('resize', onResize);
    onResize();
    return () => {
      stdout.off('resize', onResize);
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [stdout, fixedWidth, fixedHeight]);
  return size;
}
