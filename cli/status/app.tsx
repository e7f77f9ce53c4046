/**
 * The `minisipserver status` screen: header, pane tabs, the pane on show (only its visible rows
 * are rendered), footer. The data is a LiveStore kept current by the caller (lib/admin/client.ts
 * LiveFeed); this component reads it, handles the keys (cli/status/ui.ts) and runs their effects.
 */
import { useCallback, useEffect, useRef, useState } from 'react';
import { Box, Text, useApp, useInput, useStdin, type Key } from 'ink';
import type { CallView, Summary } from '../../lib/admin/types.js';
import { callParties, COLUMNS, layoutColumns, type HeaderFigures } from './format.js';
import { CallbacksPane } from './callbacks-pane.js';
import { CallsPane } from './calls-pane.js';
import { Details } from './details.js';
import { ExtensionsPane } from './extensions-pane.js';
import { Footer } from './footer.js';
import { Header, Tabs } from './header.js';
import { Help } from './help.js';
import { useNow, useStoreVersion, useTerminalSize } from './hooks.js';
import { IvrPane } from './ivr-pane.js';
import { paneRows, rowKey, sortName, type ExtensionRow, type LiveStore, type PaneId, type RowOf } from './state.js';
import { currentCursor, handleKey, initialUi, type PaneView, type UiState } from './ui.js';

export interface StatusActions {
  /** DELETE /api/v1/calls/{id}: true released, false no such call. */
  hangup(id: string): Promise<boolean>;
  /** The calls with fresh packet counters (read every few seconds while the Calls pane shows calls). */
  refreshCalls?(): Promise<CallView[]>;
  /** The summary again (read every few seconds only when it carries process figures). */
  refreshSummary?(): Promise<Summary>;
}

export interface AppProps {
  store: LiveStore;
  actions: StatusActions;
  clock?: () => number;
  /** How often durations and expiry times tick; default 1000 ms, 0: never. */
  tickMs?: number;
  /** Renders at most this often for store changes; default 100 ms. */
  refreshMs?: number;
  /** Packet counters of the calls on show, every; default 2000 ms, 0: never. */
  packetsMs?: number;
  /** Fixed size (tests); default the terminal's, following resizes. */
  width?: number;
  height?: number;
  onQuit?: () => void;
}

/** Lines above and below the rows: header (2), tabs (1), column titles (1), footer (1). */
const CHROME = 5;
const MIN_WIDTH = 40;
const MIN_HEIGHT = CHROME + 3;

export function App({ store, actions, clock = Date.now, tickMs = 1000, refreshMs = 100, packetsMs = 2000, width, height, onQuit }: AppProps) {
  const { exit } = useApp();
  const { isRawModeSupported } = useStdin();
  const version = useStoreVersion(store, refreshMs);
  const now = useNow(clock, tickMs);
  const size = useTerminalSize(width, height);
  const [ui, setUi] = useState<UiState>(initialUi);
  const uiRef = useRef(ui);
  uiRef.current = ui;

  // One line less than the terminal: ink redraws a full-height frame from scratch (flicker).
  const lines = Math.max(1, size.height - 1);
  const rowsHeight = Math.max(1, lines - CHROME);
  const pane = ui.pane;
  const filter = ui.filter;
  const sortIndex = ui.sort[pane];
  const heightRef = useRef(rowsHeight);
  heightRef.current = rowsHeight;

  // The rows of a pane as the UI state wants them, sorted once per store change: the render and
  // the key handler (which may run before the render that follows a key) share them.
  const cache = useRef<{ key: string; version: number; rows: unknown[] } | null>(null);
  const rowsFor = useCallback(
    (u: UiState): unknown[] => {
      const key = `${u.pane}\n${u.sort[u.pane]}\n${u.filter}`;
      const c = cache.current;
      if (c && c.key === key && c.version === store.version) return c.rows;
      const rows = paneRows(store, u.pane, u.sort[u.pane], u.filter, clock());
      cache.current = { key, version: store.version, rows };
      return rows;
    },
    [store, clock],
  );
  const viewOf = useCallback(
    (u: UiState): PaneView => {
      const rows = rowsFor(u) as RowOf<PaneId>[];
      const view: PaneView = {
        total: rows.length,
        keyAt: (i) => rowKey(u.pane, rows[i]!),
        height: heightRef.current,
        selectedCall: () => {
          if (u.pane !== 'calls' || rows.length === 0) return null;
          const call = rows[currentCursor(u, view).cursor] as CallView;
          return { id: call.id, label: callParties(call) };
        },
      };
      return view;
    },
    [rowsFor],
  );
  void version; // a store change renders again; rowsFor sees the new version
  const rows = rowsFor(ui) as RowOf<PaneId>[];
  const { cursor, top } = currentCursor(ui, viewOf(ui));

  const onKey = useCallback(
    (input: string, key: Key) => {
      const result = handleKey(uiRef.current, input, key, viewOf(uiRef.current));
      uiRef.current = result.state;
      setUi(result.state);
      const effect = result.effect;
      if (!effect) return;
      if (effect.kind === 'quit') {
        onQuit?.();
        exit();
        return;
      }
      const say = (message: string) => {
        uiRef.current = { ...uiRef.current, message };
        setUi(uiRef.current);
      };
      say(`hanging up ${effect.label}…`);
      actions.hangup(effect.id).then(
        (released) => say(released ? `released ${effect.label}` : `no such call any more: ${effect.label}`),
        (err: unknown) => say(`hang-up failed: ${(err as Error).message}`),
      );
    },
    [viewOf, actions, exit, onQuit],
  );
  useInput(onKey, { isActive: isRawModeSupported === true });

  // Packet counters move without events: read them while the Calls pane shows calls.
  const hasCalls = store.calls.size > 0;
  useEffect(() => {
    if (pane !== 'calls' || !hasCalls || packetsMs <= 0 || !actions.refreshCalls) return;
    let busy = false;
    const t = setInterval(() => {
      if (busy) return;
      busy = true;
      actions.refreshCalls!().then(
        (calls) => {
          busy = false;
          store.mergePackets(calls);
        },
        () => {
          busy = false;
        },
      );
    }, packetsMs);
    return () => clearInterval(t);
  }, [pane, hasCalls, packetsMs, actions, store]);

  // CPU and memory, when the server reports them, change without events too.
  const processFigures = store.processFigures();
  const hasProcess = processFigures !== null;
  useEffect(() => {
    if (!hasProcess || !actions.refreshSummary || tickMs <= 0) return;
    const t = setInterval(() => {
      actions.refreshSummary!().then(
        (s) => store.setSummary(s),
        () => undefined,
      );
    }, 5000);
    return () => clearInterval(t);
  }, [hasProcess, actions, store, tickMs]);

  if (size.width < MIN_WIDTH || lines < MIN_HEIGHT) {
    return <Text>{`terminal too small (${size.width}x${size.height}); status needs ${MIN_WIDTH}x${MIN_HEIGHT + 1}`}</Text>;
  }

  const figures: HeaderFigures = {
    node: store.summary?.node ?? '',
    version: store.summary?.version ?? '?',
    uptimeSeconds: store.uptimeSeconds(now),
    registered: store.registeredCount(),
    total: store.extensions.size,
    activeCalls: store.calls.size,
    callsPerMinute: store.callsPerMinute(now),
    callbacks: store.callbacks.size,
    ivr: store.ivr.size,
    process: processFigures,
  };
  const counts: Record<PaneId, number> = {
    extensions: store.extensions.size,
    calls: store.calls.size,
    callbacks: store.callbacks.size,
    ivr: store.ivr.size,
  };
  const visible = rows.slice(top, top + rowsHeight);
  const paneProps = {
    widths: layoutColumns(COLUMNS[pane], size.width),
    selected: cursor - top,
    height: rowsHeight,
    now,
    filtered: filter !== '',
  };

  let body;
  if (ui.mode === 'help') body = <Help height={rowsHeight + 1} />;
  else if (ui.mode === 'details') body = <Details pane={pane} row={rows[cursor]} now={now} width={size.width} height={rowsHeight + 1} />;
  else if (pane === 'extensions') body = <ExtensionsPane {...paneProps} rows={visible as ExtensionRow[]} />;
  else if (pane === 'calls') body = <CallsPane {...paneProps} rows={visible as RowOf<'calls'>[]} />;
  else if (pane === 'callbacks') body = <CallbacksPane {...paneProps} rows={visible as RowOf<'callbacks'>[]} />;
  else body = <IvrPane {...paneProps} rows={visible as RowOf<'ivr'>[]} />;

  return (
    <Box flexDirection="column" width={size.width} height={lines}>
      <Header figures={figures} connection={store.connection} width={size.width} />
      <Tabs pane={pane} counts={counts} shown={rows.length} filter={filter} sort={sortName(pane, sortIndex)} width={size.width} />
      <Box flexDirection="column" height={rowsHeight + 1}>
        {body}
      </Box>
      <Footer ui={ui} />
    </Box>
  );
}
