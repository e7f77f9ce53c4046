/**
 * The interactive `status`: opens the feed (snapshots + event stream), then renders the app
 * until `q`. Imported only by the `status` handler, so no other command loads ink.
 */
import { render } from 'ink';
import { AdminError, type AdminClient, type FeedOptions } from '../../lib/admin/client.js';
import { App } from './app.js';
import { LiveStore } from './state.js';

export interface LiveIo {
  out: NodeJS.WriteStream;
  err: NodeJS.WritableStream;
  /** Where the server is now (see FeedOptions.locate). */
  locate?: FeedOptions['locate'];
}

/** Runs the screen; resolves to the exit code (2 when the server cannot be reached at the start). */
export async function runLive(client: AdminClient, io: LiveIo): Promise<number> {
  const store = new LiveStore();
  const feed = client.watch(
    {
      snapshot: (s) => store.load(s),
      event: (e) => store.apply(e),
      status: (s) => store.setConnection(s),
    },
    io.locate ? { locate: io.locate } : {},
  );
  try {
    await feed.start();
  } catch (err) {
    io.err.write(`minisipserver status: ${(err as Error).message}\n`);
    return err instanceof AdminError && err.kind === 'http' ? 1 : 2;
  }
  // The alternate screen: the terminal's contents come back on exit.
  const alternate = io.out.isTTY === true;
  const leave = () => {
    if (alternate) io.out.write('\x1b[?1049l');
  };
  if (alternate) io.out.write('\x1b[?1049h\x1b[H');
  process.once('exit', leave);
  try {
    const app = render(
      <App
        store={store}
        actions={{
          hangup: (id) => client.hangup(id),
          refreshCalls: () => client.calls(),
          refreshSummary: () => client.summary(),
        }}
      />,
      { stdout: io.out, exitOnCtrlC: true, patchConsole: true, incrementalRendering: false },
    );
    // Without raw input (stdin not a terminal) Ctrl-C is a signal: leave the screen cleanly too.
    const stop = () => app.unmount();
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
    process.on('SIGHUP', stop);
    try {
      await app.waitUntilExit();
    } finally {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      process.off('SIGHUP', stop);
    }
  } finally {
    feed.close();
    leave();
    process.off('exit', leave);
  }
  return 0;
}
