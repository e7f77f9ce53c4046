/**
 * Table rows as both back ends hold them (the same column names and types in SQLite and MariaDB)
 * and their records.
 */
import type { BanRecord, BindingRecord, ExtensionRecord } from './store.js';

export interface ExtensionRow {
  number: string;
  display_name: string;
  realm: string;
  ha1_md5: string;
  ha1_sha256: string;
  created_at: number;
  /** Comma-separated class names; '' for none. */
  allow: string;
}

export interface BindingRow {
  aor: string;
  contact: string;
  contact_header: string;
  expires_at: number;
  call_id: string;
  cseq: number;
  q: number | null;
  instance_id: string | null;
  reg_id: number | null;
  transport: string;
  source_address: string;
  source_port: number;
  local_address: string | null;
  local_port: number | null;
  user_agent: string | null;
  /** Path values, one per line; null without Path. */
  path: string | null;
  updated_at: number;
}

export interface BanRow {
  seq: number;
  address: string;
  expires_at: number;
  reason: string;
  offences: number;
  created_at: number;
  manual: number;
  removed: number;
}

export function toBan(row: BanRow): BanRecord {
  return {
    address: row.address,
    expiresAt: row.expires_at,
    reason: row.reason,
    offences: row.offences,
    createdAt: row.created_at,
    manual: row.manual !== 0,
    removed: row.removed !== 0,
    seq: row.seq,
  };
}

export function toExtension(row: ExtensionRow): ExtensionRecord {
  return {
    number: row.number,
    displayName: row.display_name,
    realm: row.realm,
    ha1Md5: row.ha1_md5,
    ha1Sha256: row.ha1_sha256,
    createdAt: row.created_at,
    allow: row.allow === '' ? [] : row.allow.split(','),
  };
}

export function extensionParams(rec: ExtensionRecord): ExtensionRow {
  return {
    number: rec.number,
    display_name: rec.displayName,
    realm: rec.realm,
    ha1_md5: rec.ha1Md5,
    ha1_sha256: rec.ha1Sha256,
    created_at: rec.createdAt,
    allow: rec.allow.join(','),
  };
}

export function toBinding(row: BindingRow): BindingRecord {
  const b: BindingRecord = {
    aor: row.aor,
    contact: row.contact,
    contactHeader: row.contact_header,
    expiresAt: row.expires_at,
    callId: row.call_id,
    cseq: row.cseq,
    transport: row.transport === 'tcp' || row.transport === 'tls' ? row.transport : 'udp',
    sourceAddress: row.source_address,
    sourcePort: row.source_port,
    updatedAt: row.updated_at,
  };
  if (row.q !== null) b.q = row.q;
  if (row.instance_id !== null) b.instanceId = row.instance_id;
  if (row.reg_id !== null) b.regId = row.reg_id;
  if (row.local_address !== null) b.localAddress = row.local_address;
  if (row.local_port !== null) b.localPort = row.local_port;
  if (row.user_agent !== null) b.userAgent = row.user_agent;
  if (row.path !== null && row.path !== '') b.path = row.path.split('\n');
  return b;
}

export function bindingParams(b: BindingRecord): BindingRow {
  return {
    aor: b.aor,
    contact: b.contact,
    contact_header: b.contactHeader,
    expires_at: b.expiresAt,
    call_id: b.callId,
    cseq: b.cseq,
    q: b.q ?? null,
    instance_id: b.instanceId ?? null,
    reg_id: b.regId ?? null,
    transport: b.transport,
    source_address: b.sourceAddress,
    source_port: b.sourcePort,
    local_address: b.localAddress ?? null,
    local_port: b.localPort ?? null,
    user_agent: b.userAgent ?? null,
    path: b.path !== undefined && b.path.length > 0 ? b.path.join('\n') : null,
    updated_at: b.updatedAt,
  };
}
