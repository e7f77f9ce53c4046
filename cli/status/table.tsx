/** A list of rows in fixed columns, one <Text> a row: the panes give it only the rows on screen. */
import { Box, Text } from 'ink';
import { fit, headerLine, type Column } from './format.js';

export interface TableRow {
  key: string;
  cells: string[];
  /** Colour of each cell (undefined: the default). */
  colors?: (string | undefined)[];
  dim?: boolean;
}

export interface TableProps {
  columns: readonly Column[];
  widths: readonly number[];
  /** The visible rows only. */
  rows: TableRow[];
  /** Index in `rows` of the selected one, -1 for none. */
  selected: number;
  /** Lines for the rows (the column titles take one more). */
  height: number;
  /** Shown when there are no rows. */
  empty: string;
}

export function Table({ columns, widths, rows, selected, height, empty }: TableProps) {
  return (
    <Box flexDirection="column" height={height + 1}>
      <Text bold wrap="truncate">
        {headerLine(columns, widths)}
      </Text>
      {rows.length === 0 ? (
        <Text dimColor wrap="truncate">
          {empty}
        </Text>
      ) : (
        rows.map((row, i) => (
          <Text key={row.key} wrap="truncate" inverse={i === selected} dimColor={row.dim === true}>
            {columns.map((c, j) => {
              const text = fit(row.cells[j] ?? '', widths[j]!, c.align) + (j < columns.length - 1 ? ' ' : '');
              const color = row.colors?.[j];
              return color ? (
                <Text key={j} color={color}>
                  {text}
                </Text>
              ) : (
                text
              );
            })}
          </Text>
        ))
      )}
    </Box>
  );
}
