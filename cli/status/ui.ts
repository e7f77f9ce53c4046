/**
 * What the status screen shows and how keys change it: the pane, the selection and scroll of
 * each pane, sort, filter, the dialogs. Pure functions of plain data (no React, no ink), so the
 * key handling is tested on its own; the ink app renders the state and runs the effects.
 */
import { moveCursor, PANES, resolveCursor, sortCount, windowTop, type PaneId } from './state.js';

export type Mode = 'normal' | 'filter' | 'details' | 'help' | 'confirm';

export interface Selection {
  /** Key of the selected row (extension number, call id...), null before any move. */
  key: string | null;
  index: number;
  /** First row shown. */
  top: number;
}

export interface UiState {
  pane: PaneId;
  selection: Record<PaneId, Selection>;
  sort: Record<PaneId, number>;
  filter: string;
  mode: Mode;
  /** The call a `h` asks about. */
  confirm: { id: string; label: string } | null;
  /** One line in the footer, until the next key. */
  message: string | null;
}

export function initialUi(): UiState {
  const sel = (): Selection => ({ key: null, index: 0, top: 0 });
  return {
    pane: 'extensions',
    selection: { extensions: sel(), calls: sel(), callbacks: sel(), ivr: sel() },
    sort: { extensions: 0, calls: 0, callbacks: 0, ivr: 0 },
    filter: '',
    mode: 'normal',
    confirm: null,
    message: null,
  };
}

/** The keys the handler looks at (a subset of ink's Key). */
export interface KeyInfo {
  upArrow?: boolean;
  downArrow?: boolean;
  leftArrow?: boolean;
  rightArrow?: boolean;
  pageUp?: boolean;
  pageDown?: boolean;
  home?: boolean;
  end?: boolean;
  return?: boolean;
  escape?: boolean;
  tab?: boolean;
  shift?: boolean;
  ctrl?: boolean;
  meta?: boolean;
  backspace?: boolean;
  delete?: boolean;
}

/** What the handler needs to know about the pane on screen. */
export interface PaneView {
  /** Rows after filter and sort. */
  total: number;
  keyAt(i: number): string;
  /** Rows visible at once. */
  height: number;
  /** For `h`: the selected call's id and a label ("101 -> 102"), null outside the Calls pane or without a call. */
  selectedCall(): { id: string; label: string } | null;
}

export type Effect = { kind: 'quit' } | { kind: 'hangup'; id: string; label: string };

export interface KeyResult {
  state: UiState;
  effect?: Effect;
}

/** The selection of the shown pane resolved against its current rows. */
export function currentCursor(ui: UiState, view: Pick<PaneView, 'total' | 'keyAt' | 'height'>): { cursor: number; top: number } {
  const sel = ui.selection[ui.pane];
  const cursor = resolveCursor(view.keyAt, view.total, sel.key, sel.index);
  return { cursor, top: windowTop(view.total, cursor, view.height, sel.top) };
}

function select(ui: UiState, view: PaneView, cursor: number, top: number): UiState {
  const key = view.total > 0 ? view.keyAt(cursor) : null;
  return { ...ui, selection: { ...ui.selection, [ui.pane]: { key, index: cursor, top: windowTop(view.total, cursor, view.height, top) } } };
}

/** The state after one key press, and what the app should do (quit, hang up). */
export function handleKey(ui0: UiState, input: string, key: KeyInfo, view: PaneView): KeyResult {
  const ui: UiState = ui0.message !== null ? { ...ui0, message: null } : ui0;
  switch (ui.mode) {
    case 'filter':
      if (key.return) return { state: { ...ui, mode: 'normal' } };
      if (key.escape) return { state: { ...ui, mode: 'normal', filter: '' } };
      if (key.backspace || key.delete) return { state: { ...ui, filter: ui.filter.slice(0, -1) } };
      if (key.ctrl && input === 'u') return { state: { ...ui, filter: '' } };
      if (input !== '' && !key.ctrl && !key.meta && !key.tab && !/[\x00-\x1f\x7f]/.test(input)) {
        return { state: { ...ui, filter: ui.filter + input } };
      }
      return { state: ui };
    case 'confirm':
      if (input === 'y' || input === 'Y') {
        const c = ui.confirm;
        const state = { ...ui, mode: 'normal' as Mode, confirm: null };
        return c ? { state, effect: { kind: 'hangup', id: c.id, label: c.label } } : { state };
      }
      if (input === 'n' || input === 'N' || key.escape || input === 'q') return { state: { ...ui, mode: 'normal', confirm: null, message: 'hang-up cancelled' } };
      return { state: ui };
    case 'help':
    case 'details':
      if (key.escape || key.return || input === '?' || input === 'q') return { state: { ...ui, mode: 'normal' } };
      if (ui.mode === 'help') return { state: ui };
      break; // the details follow the selection: arrows still move it
    case 'normal':
      break;
  }

  if (input === 'q' || (key.ctrl && input === 'c')) return { state: ui, effect: { kind: 'quit' } };
  if (key.tab || key.rightArrow || key.leftArrow) {
    const back = (key.tab && key.shift) || key.leftArrow;
    const i = PANES.indexOf(ui.pane);
    const pane = PANES[(i + (back ? PANES.length - 1 : 1)) % PANES.length]!;
    return { state: { ...ui, pane } };
  }
  if (input === '?') return { state: { ...ui, mode: 'help' } };
  if (input === '/') return { state: { ...ui, mode: 'filter' } };
  if (key.escape && ui.filter !== '') return { state: { ...ui, filter: '' } };
  if (input === 's') {
    const n = sortCount(ui.pane);
    return { state: { ...ui, sort: { ...ui.sort, [ui.pane]: (ui.sort[ui.pane] + 1) % n } } };
  }
  if (key.return) return { state: view.total > 0 ? { ...ui, mode: 'details' } : ui };
  if (input === 'h') {
    if (ui.pane !== 'calls') return { state: { ...ui, message: 'h hangs up a call: select one in the Calls pane (Tab)' } };
    const call = view.selectedCall();
    if (!call) return { state: { ...ui, message: 'no call selected' } };
    return { state: { ...ui, mode: 'confirm', confirm: call } };
  }

  const { cursor, top } = currentCursor(ui, view);
  const page = Math.max(1, view.height - 1);
  let next: number | null = null;
  if (key.upArrow || input === 'k') next = moveCursor(view.total, cursor, -1);
  else if (key.downArrow || input === 'j') next = moveCursor(view.total, cursor, 1);
  else if (key.pageUp) next = moveCursor(view.total, cursor, -page);
  else if (key.pageDown || input === ' ') next = moveCursor(view.total, cursor, page);
  else if (key.home || input === 'g') next = 0;
  else if (key.end || input === 'G') next = Math.max(0, view.total - 1);
  if (next === null) return { state: ui };
  // PgUp/PgDn scroll the window by a page along with the cursor.
  const nextTop = key.pageUp ? top - page : key.pageDown ? top + page : top;
  return { state: select(ui, view, next, nextTop) };
}
