import { BlockList, isIP } from 'node:net';

/** Why `entry` is not an IP address or a CIDR range (192.0.2.0/24, 2001:db8::/32), or null. */
export function addressEntryProblem(entry: string): string | null {
  const [ip, bits, more] = entry.split('/');
  const family = isIP(ip ?? '');
  if (family === 0 || more !== undefined) return `${JSON.stringify(entry)} is not an IP address or a CIDR range such as 192.0.2.0/24`;
  const max = family === 6 ? 128 : 32;
  if (bits !== undefined && !(/^\d{1,3}$/.test(bits) && Number(bits) <= max)) return `${JSON.stringify(entry)}: the prefix length must be 0-${max}`;
  return null;
}

/** The addresses and ranges of `entries` (checked with addressEntryProblem) as one BlockList; null when there are none. */
export function addressList(entries: readonly string[]): BlockList | null {
  if (entries.length === 0) return null;
  const list = new BlockList();
  for (const entry of entries) {
    const [ip, bits] = entry.split('/');
    const family = isIP(ip ?? '');
    if (family === 0) continue;
    const type = family === 6 ? 'ipv6' : 'ipv4';
    if (bits === undefined) list.addAddress(ip!, type);
    else list.addSubnet(ip!, Number(bits), type);
  }
  return list;
}
