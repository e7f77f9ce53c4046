/**
 * Text of the status screen and of `status --once`: times, counters, the columns of each pane
 * and the plain table snapshot. No React here.
 */
import type { Snapshot } from '../../lib/admin/client.js';
import type { CallBackView, CallView, IvrView } from '../../lib/admin/types.js';
import { nextExpiry, type ExtensionRow, type PaneId, type ProcessFigures } from './state.js';

const pad2 = (n: number) => String(n).padStart(2, '0');

/** Elapsed time: 0:05, 12:34, 1:02:03. */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h > 0 ? `${h}:${pad2(m)}:${pad2(s % 60)}` : `${m}:${pad2(s % 60)}`;
}

/** Uptime: 04:05:06, or 3d 04:05:06. */
export function formatUptime(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  const d = Math.floor(s / 86400);
  const hms = `${pad2(Math.floor((s % 86400) / 3600))}:${pad2(Math.floor((s % 3600) / 60))}:${pad2(s % 60)}`;
  return d > 0 ? `${d}d ${hms}` : hms;
}

/**
 * Time left: 45s, 3m12s, 2h05m; "-" when unknown: a registration event that did not carry the
 * new expiry, or a time past while the contact is still there (the server tells expiries: it was
 * refreshed without an event).
 */
export function formatExpiresIn(expiresAt: number | null, now: number): string {
  if (expiresAt === null || !Number.isFinite(expiresAt)) return '-';
  const s = Math.floor((expiresAt - now) / 1000);
  if (s < 0) return '-';
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${pad2(s % 60)}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${pad2(Math.floor((s % 3600) / 60))}m`;
  return `${Math.floor(s / 86400)}d${pad2(Math.floor((s % 86400) / 3600))}h`;
}

/** 999, 12.3k, 4.56M. */
export function formatCount(n: number): string {
  if (n < 10_000) return String(n);
  if (n < 1e6) return `${(n / 1e3).toFixed(n < 1e5 ? 1 : 0)}k`;
  return `${(n / 1e6).toFixed(n < 1e7 ? 2 : 1)}M`;
}

export function formatBytes(n: number): string {
  if (n < 1024 * 1024) return `${Math.round(n / 1024)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(0)} MiB`;
  return `${(n / 1024 ** 3).toFixed(1)} GiB`;
}

/** Terminal cells of one code point: 2 for the wide East Asian ranges and emoji, 0 for combining marks. */
function cells(cp: number): number {
  if (cp < 0x300) return cp < 0x20 || cp === 0x7f ? 0 : 1;
  if (cp >= 0x300 && cp <= 0x36f) return 0;
  if (
    (cp >= 0x1100 && cp <= 0x115f) ||
    (cp >= 0x2e80 && cp <= 0xa4cf && cp !== 0x303f) ||
    (cp >= 0xac00 && cp <= 0xd7a3) ||
    (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0xfe30 && cp <= 0xfe4f) ||
    (cp >= 0xff00 && cp <= 0xff60) ||
    (cp >= 0xffe0 && cp <= 0xffe6) ||
    (cp >= 0x1f300 && cp <= 0x1faff) ||
    (cp >= 0x20000 && cp <= 0x3fffd)
  ) {
    return 2;
  }
  return 1;
}

export function textWidth(text: string): number {
  let w = 0;
  for (const ch of text) w += cells(ch.codePointAt(0)!);
  return w;
}

/** `text` made exactly `width` cells: cut with "…" when longer, padded when shorter. Control characters become spaces. */
export function fit(text: string, width: number, align: 'left' | 'right' = 'left'): string {
  if (width <= 0) return '';
  const clean = text.replace(/[\x00-\x1f\x7f]/g, ' ');
  let w = textWidth(clean);
  let out = clean;
  if (w > width) {
    out = '';
    w = 0;
    for (const ch of clean) {
      const c = cells(ch.codePointAt(0)!);
      if (w + c > width - 1) break;
      out += ch;
      w += c;
    }
    out += '…';
    w += 1;
  }
  const fill = ' '.repeat(Math.max(0, width - w));
  return align === 'right' ? fill + out : out + fill;
}

export interface Column {
  title: string;
  /** Title when the screen is narrow (the TUI); default `title`. */
  short?: string;
  /** Width in the TUI before the spare room is shared out. */
  width: number;
  /** Share of the spare room (0: fixed). */
  flex?: number;
  align?: 'left' | 'right';
}

/** Widths of `columns` (one space between them) on a line of `total` cells: flexible ones share the room left, or shrink first. */
export function layoutColumns(columns: readonly Column[], total: number): number[] {
  const widths = columns.map((c) => c.width);
  const room = total - (columns.length - 1) - widths.reduce((a, b) => a + b, 0);
  const flexes = columns.map((c) => c.flex ?? 0);
  const flexSum = flexes.reduce((a, b) => a + b, 0);
  if (flexSum === 0) return widths;
  if (room >= 0) {
    let given = 0;
    columns.forEach((_, i) => {
      const extra = Math.floor((room * flexes[i]!) / flexSum);
      widths[i]! += extra;
      given += extra;
    });
    let last = flexes.length - 1;
    while (flexes[last] === 0) last--;
    widths[last]! += room - given;
  } else {
    // Too narrow: the flexible columns give up room, down to 4 cells each, then the last ones.
    let deficit = -room;
    for (let i = columns.length - 1; i >= 0 && deficit > 0; i--) {
      if (flexes[i]! > 0) {
        const take = Math.min(deficit, Math.max(0, widths[i]! - 4));
        widths[i]! -= take;
        deficit -= take;
      }
    }
    for (let i = columns.length - 1; i >= 0 && deficit > 0; i--) {
      const take = Math.min(deficit, widths[i]!);
      widths[i]! -= take;
      deficit -= take;
    }
  }
  return widths;
}

/** One line of cells in the laid-out columns. */
export function formatLine(columns: readonly Column[], widths: readonly number[], values: readonly string[]): string {
  return columns.map((c, i) => fit(values[i] ?? '', widths[i]!, c.align)).join(' ');
}

export function headerLine(columns: readonly Column[], widths: readonly number[]): string {
  return formatLine(
    columns,
    widths,
    columns.map((c, i) => (c.short !== undefined && textWidth(c.title) > widths[i]! ? c.short : c.title)),
  );
}

// ---- The columns of each pane ---------------------------------------------------------

export const COLUMNS: Record<PaneId, readonly Column[]> = {
  extensions: [
    { title: 'NUMBER', width: 8 },
    { title: 'NAME', width: 12, flex: 1 },
    { title: 'STATE', width: 7 },
    { title: 'CONTACTS', short: 'CT', width: 2, align: 'right' },
    { title: 'USER-AGENT', width: 10, flex: 2 },
    { title: 'ADDRESS', width: 21 },
    { title: 'EXPIRES', width: 7, align: 'right' },
  ],
  calls: [
    { title: 'CALLER -> CALLEE', width: 16, flex: 1 },
    { title: 'STATE', width: 8 },
    { title: 'DURATION', short: 'TIME', width: 8, align: 'right' },
    { title: 'CODEC', width: 6 },
    { title: 'MEDIA', width: 11 },
    { title: 'PACKETS', width: 15, align: 'right' },
  ],
  callbacks: [
    { title: 'ID', width: 12, flex: 1 },
    { title: 'USER1', width: 10, flex: 1 },
    { title: 'USER2', width: 10, flex: 1 },
    { title: 'STATE', width: 9 },
    { title: 'DURATION', short: 'TIME', width: 8, align: 'right' },
  ],
  ivr: [
    { title: 'CALLER', width: 12 },
    { title: 'NUMBER', width: 10 },
    { title: 'FILE', width: 20, flex: 1 },
    { title: 'DURATION', short: 'TIME', width: 8, align: 'right' },
  ],
};

export function extensionCells(e: ExtensionRow, now: number): string[] {
  const first = e.contacts[0];
  const more = e.contacts.length > 1 ? ` +${e.contacts.length - 1}` : '';
  return [
    e.number,
    e.name,
    e.state,
    String(e.contacts.length),
    first?.userAgent ?? '',
    first ? `${first.address}${more}` : '',
    e.contacts.length > 0 ? formatExpiresIn(nextExpiry(e), now) : '',
  ];
}

/** "101 Alice -> 102" (with the dialled number when it differs: "-> 102 (9102)"). */
export function callParties(c: CallView): string {
  const caller = c.callerName ? `${c.caller} ${c.callerName}` : c.caller;
  const dialled = c.dialled && c.dialled !== c.callee ? ` (${c.dialled})` : '';
  return `${caller} -> ${c.callee}${dialled}`;
}

/** Talk time once answered, ring time before. */
export function callDuration(c: CallView, now: number): string {
  return formatDuration(now - (c.answerTime ?? c.startTime));
}

export function callCells(c: CallView, now: number): string[] {
  return [
    callParties(c),
    c.state,
    callDuration(c, now),
    c.codec || '-',
    c.media || '-',
    `${formatCount(c.packets.aToB)}/${formatCount(c.packets.bToA)}`,
  ];
}

export function callbackCells(c: CallBackView, now: number): string[] {
  return [c.id, c.user1, c.user2, c.state, formatDuration(now - (c.answerTime ?? c.startTime))];
}

export function ivrCells(i: IvrView, now: number): string[] {
  return [i.caller, i.number, i.file, formatDuration(now - i.startTime)];
}

// ---- The header ---------------------------------------------------------------------

export interface HeaderFigures {
  node: string;
  version: string;
  uptimeSeconds: number | null;
  registered: number;
  total: number;
  activeCalls: number;
  callsPerMinute: number;
  callbacks: number;
  ivr: number;
  process: ProcessFigures | null;
}

export function serverLine(h: Pick<HeaderFigures, 'node' | 'version' | 'uptimeSeconds'>): string {
  const up = h.uptimeSeconds === null ? '' : `, up ${formatUptime(h.uptimeSeconds)}`;
  return `minisipserver ${h.version} on ${h.node || '?'}${up}`;
}

export function countsLine(h: HeaderFigures): string {
  const parts = [
    `extensions ${h.registered}/${h.total} registered`,
    `calls ${h.activeCalls} active, ${h.callsPerMinute}/min`,
  ];
  if (h.callbacks > 0) parts.push(`call-backs ${h.callbacks}`);
  if (h.ivr > 0) parts.push(`IVR ${h.ivr}`);
  if (h.process?.cpuPercent !== undefined) parts.push(`CPU ${h.process.cpuPercent.toFixed(0)}%`);
  if (h.process?.rssBytes !== undefined) parts.push(`mem ${formatBytes(h.process.rssBytes)}`);
  return parts.join('  ');
}

// ---- status --once ------------------------------------------------------------------

/** A table whose columns are as wide as their widest cell (no truncation: for scripts). */
function plainTable(columns: readonly Column[], rows: string[][]): string[] {
  const clean = rows.map((r) => r.map((v) => v.replace(/[\x00-\x1f\x7f]/g, ' ')));
  const widths = columns.map((c, i) => Math.max(textWidth(c.title), ...clean.map((r) => textWidth(r[i] ?? ''))));
  const line = (values: string[]) =>
    values
      .map((v, i) => {
        const last = i === columns.length - 1;
        const fill = ' '.repeat(Math.max(0, widths[i]! - textWidth(v)));
        return columns[i]!.align === 'right' ? fill + v : last ? v : v + fill;
      })
      .join('  ')
      .trimEnd();
  return [line(columns.map((c) => c.title)), ...clean.map(line)];
}

/** The plain snapshot of `status --once`: a header line, then each section. */
export function formatOnce(s: Snapshot, now: number, rows: { extensions: ExtensionRow[]; calls: CallView[]; callbacks: CallBackView[]; ivr: IvrView[] }): string {
  const registered = rows.extensions.filter((e) => e.contacts.length > 0).length;
  const out: string[] = [];
  out.push(
    `${serverLine({ node: s.summary.node, version: s.summary.version, uptimeSeconds: s.summary.uptimeSeconds })}; ` +
      `extensions ${registered}/${rows.extensions.length} registered, calls ${rows.calls.length} active, ` +
      `call-backs ${rows.callbacks.length}, IVR sessions ${rows.ivr.length}`,
  );
  const section = (title: string, pane: PaneId, cells: string[][]) => {
    out.push('', `${title} (${cells.length})`);
    if (cells.length > 0) out.push(...plainTable(COLUMNS[pane], cells));
  };
  section('Extensions', 'extensions', rows.extensions.map((e) => extensionCells(e, now)));
  section('Calls', 'calls', rows.calls.map((c) => callCells(c, now)));
  section('Call-backs', 'callbacks', rows.callbacks.map((c) => callbackCells(c, now)));
  section('IVR', 'ivr', rows.ivr.map((i) => ivrCells(i, now)));
  return out.join('\n') + '\n';
}

// ---- Details of one row (Enter) -------------------------------------------------------

function clockTime(ms: number): string {
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
}

/** Label/value lines describing one row in full. */
export function detailLines(pane: PaneId, row: ExtensionRow | CallView | CallBackView | IvrView, now: number): [string, string][] {
  switch (pane) {
    case 'extensions': {
      const e = row as ExtensionRow;
      const lines: [string, string][] = [
        ['Extension', e.number],
        ['Name', e.name || '-'],
        ['State', e.state],
        ['Contacts', String(e.contacts.length)],
      ];
      e.contacts.forEach((c, i) => {
        const n = e.contacts.length > 1 ? ` ${i + 1}` : '';
        lines.push([`Contact${n}`, c.contact]);
        lines.push(['  from', `${c.address}${c.transport ? ` (${c.transport.toUpperCase()})` : ''}`]);
        lines.push(['  User-Agent', c.userAgent || '-']);
        lines.push(['  expires in', c.expiresAt === null || c.expiresAt < now ? '- (refreshed since; the new time was not reported)' : `${formatExpiresIn(c.expiresAt, now)} (at ${clockTime(c.expiresAt)})`]);
      });
      return lines;
    }
    case 'calls': {
      const c = row as CallView;
      return [
        ['Call', c.id],
        ['Caller', c.callerName ? `${c.caller} (${c.callerName})` : c.caller],
        ['Callee', c.callee],
        ['Dialled', c.dialled || '-'],
        ['Route', c.route || '-'],
        ['State', c.state],
        ['Started', `${clockTime(c.startTime)} (${formatDuration(now - c.startTime)} ago)`],
        ['Answered', c.answerTime === null ? '-' : `${clockTime(c.answerTime)} (talking ${formatDuration(now - c.answerTime)})`],
        ['Codec', c.codec || '-'],
        ['Media', c.media || '-'],
        ['Packets', `${c.packets.aToB} caller -> callee, ${c.packets.bToA} callee -> caller`],
      ];
    }
    case 'callbacks': {
      const c = row as CallBackView;
      return [
        ['Call-back', c.id],
        ['User1', c.user1],
        ['User2', c.user2],
        ['State', c.state],
        ['Started', `${clockTime(c.startTime)} (${formatDuration(now - c.startTime)} ago)`],
        ['Answered', c.answerTime === null ? '-' : `${clockTime(c.answerTime)} (${formatDuration(now - c.answerTime)} ago)`],
      ];
    }
    case 'ivr': {
      const i = row as IvrView;
      return [
        ['Call', i.id],
        ['Caller', i.caller],
        ['Number', i.number],
        ['File', i.file],
        ['Started', `${clockTime(i.startTime)} (${formatDuration(now - i.startTime)} ago)`],
      ];
    }
  }
}
