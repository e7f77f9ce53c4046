import { relayCases } from './relay-cases.js';

relayCases('node', false);
