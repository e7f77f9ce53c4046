// A node:test reporter for scripts/run-tests.mjs: one JSON line per test the runner cancelled
// (the event loop ran dry while the test still awaited something, or the test timed out), with
// its file and the names of the tests it is nested in.
const CANCELLED = new Set(['cancelledByParent', 'testTimeoutFailure']);

export default async function* cancelledTests(source) {
  const started = new Map(); // file -> name of the test started at each nesting level
  for await (const { type, data } of source) {
    if (type === 'test:start') {
      const names = started.get(data.file) ?? [];
      names.length = data.nesting;
      names.push(data.name);
      started.set(data.file, names);
    } else if (type === 'test:fail' && CANCELLED.has(data.details?.error?.failureType)) {
      const parents = (started.get(data.file) ?? []).slice(0, data.nesting);
      yield `${JSON.stringify({ file: data.file ?? null, test: [...parents, data.name].join(' > '), reason: data.details.error.message })}\n`;
    }
  }
}
