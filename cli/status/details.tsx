/** Everything about the selected row (Enter). */
import { Box, Text } from 'ink';
import type { CallBackView, CallView, IvrView } from '../../lib/admin/types.js';
import { detailLines, fit } from './format.js';
import type { ExtensionRow, PaneId } from './state.js';

export interface DetailsProps {
  pane: PaneId;
  row: ExtensionRow | CallView | CallBackView | IvrView | undefined;
  now: number;
  width: number;
  height: number;
}

export function Details({ pane, row, now, width, height }: DetailsProps) {
  if (!row) {
    return (
      <Box height={height}>
        <Text dimColor>the row is gone</Text>
      </Box>
    );
  }
  const lines = detailLines(pane, row, now);
  const label = Math.min(14, Math.max(...lines.map(([l]) => l.length)) + 1);
  const shown = lines.slice(0, height);
  return (
    <Box flexDirection="column" height={height}>
      {shown.map(([l, v], i) => (
        <Text key={i} wrap="truncate">
          <Text bold>{fit(l, label)}</Text> {fit(v, Math.max(0, width - label - 1))}
        </Text>
      ))}
      {lines.length > shown.length ? <Text dimColor>… {lines.length - shown.length} more lines</Text> : null}
    </Box>
  );
}
