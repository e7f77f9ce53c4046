/** The keys (`?`). */
import { Box, Text } from 'ink';

export const HELP: [string, string][] = [
  ['Tab / Shift-Tab', 'next / previous pane (also → and ←)'],
  ['↑ ↓  j k', 'move the selection'],
  ['PgUp PgDn', 'move by a page'],
  ['Home End  g G', 'first / last row'],
  ['Enter', 'details of the selected row (Enter or Esc closes)'],
  ['/', 'filter by number or name (Enter keeps it, Esc clears it)'],
  ['Esc', 'clear the filter'],
  ['s', 'next sort order of the pane'],
  ['h', 'hang up the selected call (Calls pane), after y/n'],
  ['?', 'this help'],
  ['q  Ctrl-C', 'quit'],
];

export function Help({ height }: { height: number }) {
  return (
    <Box flexDirection="column" height={height}>
      <Text bold>Keys</Text>
      {HELP.slice(0, Math.max(0, height - 1)).map(([k, d]) => (
        <Text key={k} wrap="truncate">
          <Text color="cyan">{k.padEnd(16)}</Text>
          {d}
        </Text>
      ))}
    </Box>
  );
}
