import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'csv-parse/sync';

/** Every record of the daily CSV files the server wrote in `<dataDir>/cdr`, as column -> value. */
export function cdrRows(dataDir: string): Array<Record<string, string>> {
  const dir = join(dataDir, 'cdr');
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.csv'))
    .flatMap((f) => parse(readFileSync(join(dir, f), 'utf8'), { columns: true }) as Array<Record<string, string>>);
}

/** The record of the call whose A-leg Call-ID is `callId`. */
export function cdrOf(dataDir: string, callId: string): Record<string, string> | undefined {
  return cdrRows(dataDir).find((r) => r.call_id === callId);
}
