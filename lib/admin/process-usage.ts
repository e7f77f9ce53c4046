/** This process's CPU (as % of one core since the previous reading) and resident memory. */
import { cpuUsage, memoryUsage } from 'node:process';

export class ProcessUsage {
  private lastCpu = cpuUsage();
  private lastAt = performance.now();
  private lastPercent = 0;

  constructor(private readonly minIntervalMs = 500) {}

  read(): { cpuPercent: number; rssBytes: number } {
    const now = performance.now();
    const elapsedMs = now - this.lastAt;
    if (elapsedMs >= this.minIntervalMs) {
      const cpu = cpuUsage(this.lastCpu);
      this.lastPercent = Math.round(((cpu.user + cpu.system) / 1000 / elapsedMs) * 1000) / 10;
      this.lastCpu = cpuUsage();
      this.lastAt = now;
    }
    return { cpuPercent: this.lastPercent, rssBytes: memoryUsage.rss() };
  }
}
