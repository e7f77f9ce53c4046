import { WHOLE_SECTIONS, type Config } from './schema.js';

/** One configuration key whose value differs, named `section.key`, or `trunks`, `dialplan`, `classes` for those sections. */
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
    if (isWholeSection(section)) {
      if (!sameValue(prev[section], nxt[section])) changes.push({ key: section, from: prev[section], to: nxt[section] });
      continue;
    }
    for (const key of Object.keys(nxt[section]!)) {
      const from = prev[section]?.[key];
      const to = nxt[section]![key];
      if (!sameValue(from, to)) changes.push({ key: `${section}.${key}`, from, to });
    }
  }
  return changes;
}

/** Deep equality of configuration values (the order of a mapping's keys does not count, a list's does). */
function sameValue(a: unknown, b: unknown): boolean {
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((v, i) => sameValue(v, b[i]));
  if (isRecord(a) && isRecord(b)) {
    const ka = Object.keys(a);
    return ka.length === Object.keys(b).length && ka.every((k) => Object.hasOwn(b, k) && sameValue(a[k], b[k]));
  }
  return a === b;
}

/** The value of `section.key` (or of a whole section: `dialplan`) in a configuration. */
export function configValue(config: Config, key: string): unknown {
  const c = config as unknown as Record<string, Record<string, unknown>>;
  if (isWholeSection(key)) return c[key];
  const [section, name] = key.split('.') as [string, string];
  return c[section]?.[name];
}

/** Sets `section.key` (or a whole section: `dialplan`) in a configuration (the caller has checked that both exist). */
export function setConfigValue(config: Config, key: string, value: unknown): void {
  const c = config as unknown as Record<string, unknown>;
  if (isWholeSection(key)) {
    c[key] = structuredClone(value);
    return;
  }
  const [section, name] = key.split('.') as [string, string];
  const target = c[section] as Record<string, unknown>;
  target[name] = Array.isArray(value) ? [...value] : isRecord(value) ? { ...value } : value;
}

function isWholeSection(name: string): boolean {
  return (WHOLE_SECTIONS as readonly string[]).includes(name);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
