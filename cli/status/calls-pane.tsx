/** The Calls pane: caller -> callee, state, duration (ticking), codec, media, packets each way. */
import type { CallView } from '../../lib/admin/types.js';
import { callCells, COLUMNS } from './format.js';
import type { PaneProps } from './extensions-pane.js';
import { Table } from './table.js';

export function CallsPane({ rows, widths, selected, height, now, filtered }: PaneProps<CallView>) {
  return (
    <Table
      columns={COLUMNS.calls}
      widths={widths}
      height={height}
      selected={selected}
      empty={filtered ? 'no call matches the filter' : 'no calls'}
      rows={rows.map((c) => ({
        key: c.id,
        cells: callCells(c, now),
        colors: [undefined, c.state === 'answered' ? 'green' : 'yellow'],
      }))}
    />
  );
}
