/** The IVR pane: caller, IVR number, the IVR-XML file, time in the IVR. */
import type { IvrView } from '../../lib/admin/types.js';
import { COLUMNS, ivrCells } from './format.js';
import type { PaneProps } from './extensions-pane.js';
import { Table } from './table.js';

export function IvrPane({ rows, widths, selected, height, now, filtered }: PaneProps<IvrView>) {
  return (
    <Table
      columns={COLUMNS.ivr}
      widths={widths}
      height={height}
      selected={selected}
      empty={filtered ? 'no IVR session matches the filter' : 'no IVR sessions'}
      rows={rows.map((i) => ({ key: i.id, cells: ivrCells(i, now) }))}
    />
  );
}
