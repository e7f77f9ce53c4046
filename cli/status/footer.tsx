/** The last line: the filter being typed, a hang-up to confirm, a message, or the keys. */
import { Text } from 'ink';
import type { UiState } from './ui.js';

export function Footer({ ui }: { ui: UiState }) {
  if (ui.mode === 'filter') {
    return (
      <Text wrap="truncate">
        <Text color="yellow">/{ui.filter}</Text>
        <Text inverse> </Text>
        <Text dimColor>  number or name; Enter keeps it, Esc clears it</Text>
      </Text>
    );
  }
  if (ui.mode === 'confirm' && ui.confirm) {
    return (
      <Text wrap="truncate" color="red" bold>
        Hang up {ui.confirm.label}? (y/n)
      </Text>
    );
  }
  if (ui.message !== null) {
    return (
      <Text wrap="truncate" color="yellow">
        {ui.message}
      </Text>
    );
  }
  const keys = ui.mode === 'details' ? 'Enter/Esc close  ↑↓ next row  q close' : 'Tab pane  ↑↓ PgUp/PgDn move  Enter details  / filter  s sort  h hang up  ? help  q quit';
  return (
    <Text wrap="truncate" dimColor>
      {keys}
    </Text>
  );
}
