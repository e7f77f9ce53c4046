import { isIP } from 'node:net';

/** Why `entry` is not an IP address or a CIDR range (192.0.2.0/24, 2001:db8::/32), or null. */
export function addressEntryProblem(entry: string): string | null {
  const [ip, bits, more] = entry.split('/');
  const family = isIP(ip ?? '');
  if (family === 0 || more !== undefined) return `${JSON.stringify(entry)} is not an IP address or a CIDR range such as 192.0.2.0/24`;
  const max = family === 6 ? 128 : 32;
  if (bits !== undefined && !(/^\d{1,3}$/.test(bits) && Number(bits) <= max)) return `${JSON.stringify(entry)}: the prefix length must be 0-${max}`;
  return null;
}
