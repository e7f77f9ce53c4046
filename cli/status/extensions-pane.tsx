/** The Extensions pane: number, name, state in colour, contacts, User-Agent, address, expires in. */
import type { ExtensionState } from '../../lib/admin/types.js';
import { COLUMNS, extensionCells } from './format.js';
import type { ExtensionRow } from './state.js';
import { Table } from './table.js';

export const STATE_COLORS: Record<ExtensionState, string> = { online: 'green', ringing: 'yellow', talking: 'cyan', offline: 'gray' };

export interface PaneProps<T> {
  /** The rows on screen. */
  rows: T[];
  widths: readonly number[];
  selected: number;
  height: number;
  now: number;
  filtered: boolean;
}

export function ExtensionsPane({ rows, widths, selected, height, now, filtered }: PaneProps<ExtensionRow>) {
  return (
    <Table
      columns={COLUMNS.extensions}
      widths={widths}
      height={height}
      selected={selected}
      empty={filtered ? 'no extension matches the filter' : 'no extensions (add some with `minisipserver ext add`)'}
      rows={rows.map((e) => ({
        key: e.number,
        cells: extensionCells(e, now),
        colors: [undefined, undefined, STATE_COLORS[e.state]],
        dim: e.state === 'offline',
      }))}
    />
  );
}
