import { hostname } from 'node:os';
import type { Config } from './schema.js';

/** This node's name (node.name), in CDRs and the admin API: the host name when none is set. */
export function nodeName(config: Config): string {
  return config.node.name || hostname();
}
