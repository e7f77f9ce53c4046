/** The header: server and uptime with the stream's state, then the counts; the pane tabs below. */
import { Box, Text } from 'ink';
import type { FeedStatus } from '../../lib/admin/client.js';
import { countsLine, fit, serverLine, textWidth, type HeaderFigures } from './format.js';
import { PANES, type PaneId } from './state.js';

export const PANE_TITLES: Record<PaneId, string> = { extensions: 'Extensions', calls: 'Calls', callbacks: 'Call-backs', ivr: 'IVR' };

function connectionText(c: FeedStatus): { text: string; color: string } {
  switch (c.state) {
    case 'live':
      return { text: '● live', color: 'green' };
    case 'connecting':
      return { text: '○ connecting', color: 'yellow' };
    case 'reconnecting':
      return { text: `○ reconnecting${c.attempt > 1 ? ` (${c.attempt})` : ''}`, color: 'yellow' };
    case 'closed':
      return { text: '○ closed', color: 'red' };
  }
}

export function Header({ figures, connection, width }: { figures: HeaderFigures; connection: FeedStatus; width: number }) {
  const conn = connectionText(connection);
  const left = serverLine(figures);
  const room = Math.max(0, width - textWidth(conn.text) - 1);
  const why = connection.state === 'reconnecting' && connection.error ? connection.error : '';
  return (
    <Box flexDirection="column">
      <Text wrap="truncate">
        <Text bold>{fit(left, room)}</Text> <Text color={conn.color}>{conn.text}</Text>
      </Text>
      <Text wrap="truncate">{why ? <Text color="yellow">{fit(`event stream down (${why}); showing the state before`, width)}</Text> : countsLine(figures)}</Text>
    </Box>
  );
}

export interface TabsProps {
  pane: PaneId;
  counts: Record<PaneId, number>;
  /** Rows of the current pane that match the filter. */
  shown: number;
  filter: string;
  sort: string;
  width: number;
}

export function Tabs({ pane, counts, shown, filter, sort, width }: TabsProps) {
  const right = `${filter ? `/${filter}: ${shown}  ` : ''}by ${sort}`;
  let used = textWidth(right) + 1;
  return (
    <Text wrap="truncate">
      {PANES.map((p) => {
        const label = ` ${PANE_TITLES[p]} ${counts[p]} `;
        used += textWidth(label) + 1;
        return (
          <Text key={p}>
            <Text inverse={p === pane} bold={p === pane}>
              {label}
            </Text>{' '}
          </Text>
        );
      })}
      <Text dimColor>{' '.repeat(Math.max(0, width - used))}</Text>
      <Text color={filter ? 'yellow' : undefined} dimColor={!filter}>
        {right}
      </Text>
    </Text>
  );
}
