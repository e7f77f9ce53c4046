import type { Config } from './schema.js';

/** One configuration key whose value differs, named `section.key`. */
export interface ConfigChange {
  key: string;
  from: unknown;
  to: unknown;
}

/** The keys whose values differ between two configurations, in schema order. */
export function configChanges(previous: Config, next: Config): ConfigChange[] {
  const changes: ConfigChange[] = [];
  const prev = previous as unknown as Record<string, Record<string, unknown>>;
  const nxt = next as unknown as Record<string, Record<string, unknown>>;
  for (const section of Object.keys(nxt)) {
    for (const key of Object.keys(nxt[section]!)) {
      const from = prev[section]?.[key];
      const to = nxt[section]![key];
      if (!sameValue(from, to)) changes.push({ key: `${section}.${key}`, from, to });
    }
  }
  return changes;
}

function sameValue(a: unknown, b: unknown): boolean {
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((v, i) => v === b[i]);
  if (isRecord(a) && isRecord(b)) {
    const ka = Object.keys(a);
    return ka.length === Object.keys(b).length && ka.every((k) => a[k] === b[k]);
  }
  return a === b;
}

/** The value of `section.key` in a configuration. */
export function configValue(config: Config, key: string): unknown {
  const [section, name] = key.split('.') as [string, string];
  return (config as unknown as Record<string, Record<string, unknown>>)[section]?.[name];
}

/** Sets `section.key` in a configuration (the caller has checked that both exist). */
export function setConfigValue(config: Config, key: string, value: unknown): void {
  const [section, name] = key.split('.') as [string, string];
  const target = (config as unknown as Record<string, Record<string, unknown>>)[section]!;
  target[name] = Array.isArray(value) ? [...value] : isRecord(value) ? { ...value } : value;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
