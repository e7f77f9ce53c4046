/** The Call-backs pane: id, user1, user2, state, time since start (or since user1 answered). */
import type { CallBackView } from '../../lib/admin/types.js';
import { callbackCells, COLUMNS } from './format.js';
import type { PaneProps } from './extensions-pane.js';
import { Table } from './table.js';

export function CallbacksPane({ rows, widths, selected, height, now, filtered }: PaneProps<CallBackView>) {
  return (
    <Table
      columns={COLUMNS.callbacks}
      widths={widths}
      height={height}
      selected={selected}
      empty={filtered ? 'no call-back matches the filter' : 'no call-backs in progress'}
      rows={rows.map((c) => ({
        key: c.id,
        cells: callbackCells(c, now),
        colors: [undefined, undefined, undefined, c.state === 'bridged' ? 'green' : 'yellow'],
      }))}
    />
  );
}
