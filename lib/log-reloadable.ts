import { Logger, type LoggerOptions, type LogLevel } from './log.js';

/**
 * A Logger whose level, format and peer budget can be changed while the server runs (SIGHUP):
 * every component keeps the same object, which hands each call to the current inner Logger.
 */
export class ReloadableLogger extends Logger {
  private current: Logger;

  constructor(private readonly base: LoggerOptions) {
    super(base);
    this.current = new Logger(base);
  }

  reconfigure(change: Pick<LoggerOptions, 'level' | 'format' | 'peerEventsPerSecond'>): void {
    this.current = new Logger({ ...this.base, ...change });
  }

  override enabled(level: LogLevel): boolean {
    return this.current.enabled(level);
  }

  override peer(level: LogLevel, event: string, fields?: Record<string, unknown>): void {
    this.current.peer(level, event, fields);
  }

  override log(level: LogLevel, event: string, fields?: Record<string, unknown>): void {
    this.current.log(level, event, fields);
  }
}
